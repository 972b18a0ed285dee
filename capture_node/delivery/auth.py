"""Authentication of delivery requests: `Authorization: Bearer <token>` checked against the partner store; the app
behind sees only requests of a known partner (scope state `partner`), everything else is answered 401."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from excap.delivery.partners import PartnerStore
from excap.web.guard import ASGIApp, Receive, Scope, Send, header

__all__ = ["Authenticator", "bearer_token"]


def bearer_token(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Authenticator:
    """ASGI wrapper: the app sees only requests with a valid bearer token (scope state `partner`); others get 401."""

    def __init__(self, app: ASGIApp, store: PartnerStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        partner = await run_in_threadpool(self.store.authenticate, token) if token else None
        if partner is None:
            denied = JSONResponse({"detail": "a valid bearer token is required"}, status_code=401,
                                  headers={"WWW-Authenticate": 'Bearer realm="excap"'})
            await denied(scope, receive, send)
            return
        scope.setdefault("state", {})["partner"] = partner
        await self.app(scope, receive, send)

"""Authentication of delivery requests: `Authorization: Bearer <token>` checked against the partner store; the app
behind sees only requests of a known partner (scope state `partner`), everything else is answered 401.

Two exceptions: the partner page's own files (`PUBLIC_PATHS`, `/static/partner/...`: HTML and JS holding no data;
the page asks for everything with the token typed into it), and review videos asked for with a signed URL
(`excap.delivery.signed_urls`), which the browser's `<video>` element cannot send a header with: a valid signature
of an active partner's token id stands for its token, anything else signed gets 403.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from excap.delivery.partners import Partner, PartnerStore
from excap.delivery.signed_urls import signing_key, verify
from excap.web.guard import ASGIApp, Receive, Scope, Send, header

__all__ = ["PUBLIC_PATHS", "Authenticator", "bearer_token"]

PUBLIC_PATHS = frozenset({"/", "/partner"})
STATIC_PREFIX = "/static/partner/"
_REVIEW_VIDEO = re.compile(r"/v1/episodes/([^/]+)/review\.mp4")


def bearer_token(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _is_public(scope: Scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") in ("GET", "HEAD") and (path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX))


class Authenticator:
    """ASGI wrapper: the app sees only requests with a valid bearer token (scope state `partner`); others get 401."""

    def __init__(self, app: ASGIApp, store: PartnerStore, root: Path | None = None) -> None:
        self.app = app
        self.store = store
        self.root = root  # the served folder, whose key signs review video URLs (None: no signed URLs)

    def _signed(self, scope: Scope) -> Partner | bool | None:
        """False if the request carries no signature (or not on the review video route); else its partner, or
        None if the signature is invalid, expired or of a revoked token."""
        match = _REVIEW_VIDEO.fullmatch(scope.get("path", ""))
        if self.root is None or match is None:
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=10)
        if "signature" not in query:
            return False
        signed = verify(signing_key(self.root), match.group(1), {k: v[0] for k, v in query.items() if len(v) == 1})
        return self.store.active_by_token_id(signed.token_id) if signed else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _is_public(scope):
            await self.app(scope, receive, send)
            return
        try:
            signed = await run_in_threadpool(self._signed, scope)
        except ValueError:  # more query fields than a signed URL has
            signed = None
        if signed is not False:
            if not isinstance(signed, Partner):
                await JSONResponse({"detail": "this video link is invalid or has expired"}, status_code=403)(
                    scope, receive, send)
                return
            scope.setdefault("state", {})["partner"] = signed
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

"""Logins for a station served to the network (`--allow-remote`): sessions, CSRF tokens, roles, login rate limits.

`AuthGate` is an ASGI middleware in front of the station app. With remote access (`StationAuth` given) every
request but the login page (`GET /login`, `/static/login.js`) and `POST /api/login` needs a valid session cookie:
without one an API request gets 401 JSON and the page (`GET /`) a redirect to `/login`. Every state-changing
request also needs the session's CSRF token in an `X-CSRF-Token` header (403 otherwise, compared in constant time),
and a role allowed to make it (`PERMISSIONS`, 403 otherwise); the app behind sees the user as
`request.state.user` and `request.state.role`. On loopback without remote access nothing needs a login:
`GET /api/whoami` answers
`{"login": false, "csrf": ""}` and the page's (empty) CSRF header is ignored.

Sessions live in memory only (a restart logs everyone out): a random 32-byte token in a cookie (HttpOnly, Secure,
SameSite=Strict, Path=/), ended after `idle_s` without a request or `max_age_s` after the login, by
`POST /api/logout`, or when the user is removed or replaced in the users file. Failed logins are counted per user
name and per client address: after `max_failures` in a row that name or address is locked out for `lockout_s`,
doubling with each further failure up to `max_lockout_s` (429 with Retry-After); the counts kept are bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from excap.core.errors import ConfigError
from excap.station.users import DUMMY_HASH, MAX_PASSWORD_CHARS, ROLES, StationUser, UserStore
from excap.web.guard import SAFE_METHODS, ASGIApp, Receive, Scope, Send
from excap.web.server import check_tls_files

COOKIE = "excap_session"
CSRF_HEADER = "x-csrf-token"
NO_CACHE = {"Cache-Control": "no-store"}
log = logging.getLogger("excap.station.auth")

# What each role may do. GET and HEAD need "view"; the POST routes in OPERATE_ROUTES need "operate"; every other
# state-changing request (overriding a start gate, changing the certification policy, ending other users'
# sessions, and any route added later) needs "administer".
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"view", "operate"}),
    "site_lead": frozenset({"view", "operate", "administer"}),
}
OPERATE_ROUTES = frozenset({"/api/start", "/api/stop", "/api/discard", "/api/mark", "/api/label", "/api/session",
                            "/api/logout"})
PUBLIC_ROUTES = frozenset({("GET", "/login"), ("HEAD", "/login"), ("GET", "/static/login.js"),
                           ("HEAD", "/static/login.js"), ("POST", "/api/login")})
assert set(PERMISSIONS) == set(ROLES)


def required_permission(method: str, path: str) -> str:
    """The permission a request needs (see PERMISSIONS)."""
    if method in SAFE_METHODS:
        return "view"
    return "operate" if path in OPERATE_ROUTES else "administer"


@dataclass(frozen=True)
class AuthSettings:
    """Where the users are and how long sessions and lockouts last (seconds)."""

    users_file: Path
    idle_s: float = 15 * 60
    max_age_s: float = 12 * 3600
    max_failures: int = 5
    lockout_s: float = 30.0
    max_lockout_s: float = 15 * 60
    max_sessions: int = 1000
    max_tracked: int = 10_000  # user names and addresses whose failed logins are counted

    def check(self) -> None:
        if not (self.idle_s > 0 and self.max_age_s > 0 and self.max_failures > 0 and self.lockout_s > 0):
            raise ConfigError("session timeouts, failure count and lockout must be positive")
        store = UserStore(self.users_file)
        if store.problem:
            raise ConfigError(store.problem)
        if not store.users():
            raise ConfigError(f"{self.users_file}: no station users (add one: excap station-user add NAME "
                              "--role site_lead)")


@dataclass(frozen=True)
class RemoteAccess:
    """What serving a station to the network needs: a TLS certificate and key, and the logins."""

    tls_cert: Path
    tls_key: Path
    auth: AuthSettings
    allowed_hosts: tuple[str, ...] = ()

    def check(self) -> None:
        check_tls_files(self.tls_cert, self.tls_key)
        self.auth.check()


@dataclass
class Session:
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float
    account: StationUser = field(repr=False)


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    """Sessions by (the hash of) their token; bounded: the least recently used goes when full."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, account: StationUser) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(account.name, account.role, secrets.token_urlsafe(32), now, now, account)
        with self._lock:
            self._drop_idle(now)
            self._sessions[_key(token)] = session
            while len(self._sessions) > self.settings.max_sessions:
                self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a token (its idle time restarts), else None (an expired one is ended)."""
        if not token:
            return None
        key, now = _key(token), time.monotonic()
        with self._lock:
            self._drop_idle(now)
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.settings.idle_s or now - session.created > self.settings.max_age_s:
                del self._sessions[key]
                return None
            session.last_seen = now
            self._sessions.move_to_end(key)
            return session

    def _drop_idle(self, now: float) -> None:
        """End the sessions idle too long: the least recently used come first."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.settings.idle_s:
                return
            self._sessions.popitem(last=False)

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_key(token), None)

    def end_user(self, name: str) -> int:
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.user == name]
            for key in keys:
                del self._sessions[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginLimiter:
    """Failed logins per key ('user:NAME', 'addr:IP'); a key locked out is refused without checking a password."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            return max((f.locked_until - now for k in keys if (f := self._failures.get(k))), default=0.0)

    def failed(self, keys: Iterable[str]) -> bool:
        """Count a failure for each key; True if a key is locked out now."""
        now, settings = time.monotonic(), self.settings
        locked = False
        with self._lock:
            for key in keys:
                record = self._failures.pop(key, None) or _Failures()
                record.count += 1
                beyond = record.count - settings.max_failures
                if beyond >= 0:
                    record.locked_until = now + min(settings.lockout_s * 2 ** min(beyond, 30), settings.max_lockout_s)
                    locked = True
                self._failures[key] = record
                while len(self._failures) > settings.max_tracked:
                    self._failures.popitem(last=False)
        return locked

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class StationAuth:
    """The users, sessions and login limits of one station server."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.users = UserStore(settings.users_file)
        self.sessions = SessionStore(settings)
        self.limiter = LoginLimiter(settings)
        self._checks = anyio.CapacityLimiter(2)  # scrypt needs ~32 MiB: at most two password checks at a time

    def session(self, token: str | None) -> Session | None:
        """The live session of a token whose user is still the same in the users file."""
        session = self.sessions.get(token)
        if session is not None and self.users.get(session.user) != session.account:
            self.sessions.end(token)
            return None
        return session

    async def login(self, name: str, password: str, address: str) -> tuple[str, Session] | float:
        """A new session (token, session), or the seconds to wait before trying again (0: wrong password)."""
        keys = (f"user:{name[:64]}", f"addr:{address}")
        async with self._checks:  # the lockout is looked at again by each attempt that waited for its turn
            wait = self.limiter.retry_after(keys)
            if wait > 0:
                return wait
            account = self.users.get(name)
            hashed = account.password if account is not None else DUMMY_HASH
            good = await anyio.to_thread.run_sync(hashed.matches, password)
            if account is None or not good:
                if self.limiter.failed(keys):
                    log.warning("station logins for %.64r or from %s locked out after failures", name, address)
                return 0.0
            self.limiter.succeeded(keys)
            return self.sessions.create(account)


def _static(name: str) -> str:
    return resources.files("excap.station.web").joinpath("static", name).read_text(encoding="utf-8")


def _whoami(session: Session | None, settings: AuthSettings | None) -> dict[str, Any]:
    if session is None or settings is None:
        return {"login": False, "user": "", "role": "", "csrf": "", "permissions": sorted(PERMISSIONS["site_lead"])}
    return {"login": True, "user": session.user, "role": session.role, "csrf": session.csrf,
            "permissions": sorted(PERMISSIONS[session.role]), "idle_timeout_s": settings.idle_s,
            "expires_in_s": round(max(0.0, session.created + settings.max_age_s - time.monotonic()), 1)}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_CACHE, **(headers or {})})


class AuthGate:
    """ASGI middleware: the login routes, and sessions, CSRF tokens and roles for everything else (remote only)."""

    def __init__(self, app: ASGIApp, auth: StationAuth | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            if self.auth is not None and self.auth.session(HTTPConnection(scope).cookies.get(COOKIE)) is None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        method, path = str(scope.get("method", "GET")).upper(), str(scope.get("path", ""))
        if (method, path) in PUBLIC_ROUTES:
            await self._public(request, method, path)(scope, receive, send)
            return
        if self.auth is None:
            if path == "/api/whoami" and method in SAFE_METHODS:
                await _json(200, _whoami(None, None))(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        token = request.cookies.get(COOKIE)
        session = self.auth.session(token)
        refusal = self._refusal(request, method, path, session)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert session is not None
        scope.setdefault("state", {}).update(user=session.user, role=session.role)
        if path == "/api/whoami" and method in SAFE_METHODS:
            await _json(200, _whoami(session, self.auth.settings))(scope, receive, send)
        elif path == "/api/logout" and method == "POST":
            self.auth.sessions.end(token)
            await self._logged_out()(scope, receive, send)
        elif path == "/api/sessions/revoke" and method == "POST":
            await (await self._revoke(request))(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _refusal(self, request: Request, method: str, path: str, session: Session | None) -> Response | None:
        if session is None:
            if method in SAFE_METHODS and path == "/":
                return RedirectResponse("/login", status_code=303, headers=NO_CACHE)
            return _json(401, {"detail": "log in first"})
        if method not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode("utf-8", "replace"), session.csrf.encode()):
                return _json(403, {"detail": "missing or wrong X-CSRF-Token"})
        needed = required_permission(method, path)
        if needed not in PERMISSIONS[session.role]:
            return _json(403, {"detail": f"the {session.role} role may not do this ({needed})"})
        return None

    def _public(self, request: Request, method: str, path: str) -> Response | _LoginHandler:
        if path == "/login":
            return HTMLResponse(_static("login.html"), headers=NO_CACHE)
        if path == "/static/login.js":
            return Response(_static("login.js"), media_type="text/javascript", headers=NO_CACHE)
        return _LoginHandler(self.auth, request)

    def _logged_out(self) -> Response:
        response = _json(200, {"login": False})
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def _revoke(self, request: Request) -> Response:
        assert self.auth is not None
        body = await _body(request)
        name = body.get("user") if body is not None else None
        if not isinstance(name, str) or not name:
            return _json(400, {"detail": "give the user whose sessions to end: {\"user\": NAME}"})
        return _json(200, {"user": name, "ended": self.auth.sessions.end_user(name)})


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


class _LoginHandler:
    """`POST /api/login {user, password}`: a session cookie and the CSRF token, 401, or 429 while locked out."""

    def __init__(self, auth: StationAuth | None, request: Request) -> None:
        self.auth = auth
        self.request = request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer()
        await response(scope, receive, send)

    async def _answer(self) -> Response:
        if self.auth is None:
            return _json(404, {"detail": "this station needs no login (served on loopback only)"})
        body = await _body(self.request)
        name = body.get("user") if body is not None else None
        password = body.get("password") if body is not None else None
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            return _json(400, {"detail": "give {\"user\": NAME, \"password\": PASSWORD}"})
        address = self.request.client.host if self.request.client else "?"
        result = await self.auth.login(name, password, address)
        if isinstance(result, float):
            if result > 0:
                seconds = int(result) + 1
                return _json(429, {"detail": f"too many failed logins: try again in {seconds} s"},
                             {"Retry-After": str(seconds)})
            return _json(401, {"detail": "wrong user name or password"})
        token, session = result
        response = _json(200, _whoami(session, self.auth.settings))
        response.set_cookie(COOKIE, token, path="/", secure=True, httponly=True, samesite="strict")
        return response

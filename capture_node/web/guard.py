"""Refusing requests other web pages make a browser send: an ASGI middleware for the station page and the delivery
API.

- **Host**: the `Host` header must name the server itself (127.0.0.1:PORT, localhost:PORT, [::1]:PORT on loopback;
  configured names, this machine's names and IP addresses when serving remotely). Anything else is refused with
  421: a page on a foreign name that resolves to this machine (DNS rebinding) gets nothing.
- **Origin**: a state-changing request (any method but GET, HEAD, OPTIONS) that comes from a browser must come from
  a page of this server: its `Origin` (else `Referer`, else `Sec-Fetch-Site`) must be the server's own origin,
  otherwise 403. Requests without any of these headers are not from a browser page (curl, scripts) and pass.
- **JSON** (`require_json`): a state-changing request must have a JSON content type, otherwise 415, so that a
  plain HTML form, which can only send form or text bodies, can never make one.

Refusals are answered with a one-line JSON `detail`, counted, and logged at most once per second.

The body of every request is read before it is answered (up to MAX_BODY_BYTES, else 413): a server that answers
and closes while a request's bytes are still unread makes the kernel reset the connection, and the client then
loses the answer (an early refusal must reach it as an answer, not as "connection reset").
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY_BYTES = 1 << 20
MAX_HOST_CHARS = 300
_PORT = re.compile(r":[0-9]{1,5}")
log = logging.getLogger("excap.http")



def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an IP literal, IPv6 with or without brackets) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _normal_host(host: str) -> str:
    """Lower case; IPv6 literals in brackets."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host


def split_authority(authority: str, default_port: int) -> tuple[str, int] | None:
    """'name:port', '[v6]:port' or 'name' -> (normalised host, port); None if malformed."""
    authority = authority.strip()
    if not authority or len(authority) > MAX_HOST_CHARS or any(c in authority for c in "/\\@?# \t,"):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[: end + 1], authority[end + 1:]
        if not _ip_literal(host):
            return None
    else:
        host, _, port_text = authority.partition(":")
        rest = f":{port_text}" if _ else ""
        if not host:
            return None
    if not rest:
        return _normal_host(host), default_port
    if _PORT.fullmatch(rest) is None:
        return None
    port = int(rest[1:])
    return (_normal_host(host), port) if 0 < port < 65536 else None


@dataclass(frozen=True)
class AllowedHosts:
    """The names a server answers to. `names` holds 'host' (any port) and 'host:port' entries, lower case."""

    port: int
    names: frozenset[str]
    any_ip: bool = False  # bound to every address: any IP literal with the server's port
    scheme: str = "http"

    @classmethod
    def for_server(cls, bind_host: str, port: int, extra: Iterable[str] = (), scheme: str = "http") -> AllowedHosts:
        bind = _normal_host(bind_host)
        wildcard = bind in ("0.0.0.0", "[::]", "")
        names = {f"{name}:{port}" for name in LOOPBACK_NAMES} if wildcard or is_loopback(bind) else set()
        if not wildcard:
            names.add(f"{bind}:{port}")
        if wildcard or not is_loopback(bind):
            for name in {socket.gethostname(), socket.getfqdn()}:
                if name:
                    names.add(f"{_normal_host(name)}:{port}")
        for name in extra:
            parsed = split_authority(name, 0)
            if parsed is None:
                continue
            host, given = parsed
            names.add(f"{host}:{given}" if given else host)
        return cls(port, frozenset(names), wildcard, scheme)

    def allows(self, authority: str | None) -> bool:
        if authority is None:
            return False
        parsed = split_authority(authority, DEFAULT_PORTS.get(self.scheme, 80))
        if parsed is None:
            return False
        host, port = parsed
        if f"{host}:{port}" in self.names or host in self.names:
            return True
        return self.any_ip and port == self.port and _ip_literal(host)


def header(scope: Scope, name: bytes) -> str | None:
    """The value of a request's header `name` (lower-case bytes), or None."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _same_origin(url: str, host: str, scheme: str) -> bool:
    """Whether a URL (an Origin or a Referer) is scheme://host of this request, on this server's scheme."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if parts.scheme != scheme or not parts.netloc or "@" in parts.netloc:
        return False
    theirs = split_authority(parts.netloc, DEFAULT_PORTS[parts.scheme])
    ours = split_authority(host, DEFAULT_PORTS.get(scheme, 80))
    return theirs is not None and theirs == ours


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str


def check_request(scope: Scope, hosts: AllowedHosts, require_json: bool) -> Refusal | None:
    """Why a request must be refused, or None."""
    host = header(scope, b"host")
    if not hosts.allows(host):
        return Refusal(421, "this server does not answer to that Host")
    assert host is not None
    method = str(scope.get("method", "GET")).upper()
    if method in SAFE_METHODS:
        return None
    origin = header(scope, b"origin")
    referer = header(scope, b"referer")
    fetch_site = header(scope, b"sec-fetch-site")
    if origin is not None:
        if not _same_origin(origin, host, hosts.scheme):
            return Refusal(403, "cross-origin request refused")
    elif referer is not None:
        if not _same_origin(referer, host, hosts.scheme):
            return Refusal(403, "cross-origin request refused")
    elif fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return Refusal(403, "cross-site request refused")
    if require_json:
        media = (header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            return Refusal(415, "state-changing requests need Content-Type: application/json")
    return None


class HostOriginGuard:
    """ASGI middleware applying `check_request` to every HTTP request (and the Host check to websockets)."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts, require_json: bool = False, name: str = "http") -> None:
        self.app = app
        self.hosts = hosts
        self.require_json = require_json
        self.name = name
        self.refused = 0
        self._lock = threading.Lock()
        self._last_log = 0.0
        self._unlogged = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.hosts.allows(header(scope, b"host")):
            self._count(scope, Refusal(421, "websocket for a foreign Host"))
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = await _read_body(receive)
        refusal = check_request(scope, self.hosts, self.require_json) if received is not None else Refusal(
            413, f"request body over {MAX_BODY_BYTES} bytes")
        if refusal is None:
            assert received is not None
            await self.app(scope, _replay(received, receive), send)
            return
        self._count(scope, refusal)
        await _answer(send, refusal)

    def _count(self, scope: Scope, refusal: Refusal) -> None:
        now = time.monotonic()
        with self._lock:
            self.refused += 1
            self._unlogged += 1
            if now - self._last_log < 1.0:
                return
            count, self._unlogged, self._last_log = self._unlogged, 0, now
        client = scope.get("client") or ("?", 0)
        log.warning("%s: refused %d request(s) in the last second, latest %s %.80r from %s: %s", self.name, count,
                    str(scope.get("method", ""))[:16], scope.get("path", ""), client[0], refusal.detail)


async def _read_body(receive: Receive) -> list[Message] | None:
    """The request's body messages, all of them (None: the body is over MAX_BODY_BYTES)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message.get("type") != "http.request":
            return messages  # the client went away: the app sees the disconnect
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], server_receive: Receive) -> Receive:
    """A `receive` giving the messages already read, then the server's own (which waits for the disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0) if pending else await server_receive()

    return receive


async def _answer(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})

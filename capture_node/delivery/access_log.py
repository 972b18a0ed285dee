"""The delivery API's access log: one JSON line per answered request (partner, status, bytes actually sent), each
written whole with O_APPEND into the private state folder (DIR/.excap/access.log, mode 0600), bounded in line
length, rotated by size, and refused requests rate-limited per client so that a flood cannot fill the disk."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from excap.core.state_dir import FILE_MODE, private_dir, private_file
from excap.delivery.partners import Partner
from excap.web.guard import ASGIApp, Message, Receive, Scope, Send, header

__all__ = ["ACCESS_LOG", "AccessLog", "AccessLogOptions", "AccessLogger", "RefusalLimiter"]

ACCESS_LOG = "access.log"


@dataclass
class AccessLogOptions:
    """Bounds of the access log: whole lines of at most ~4 KiB, rotated by size (access.log, access.log.1, ...),
    and refused requests (status 400 or more) of one client logged one by one only up to a burst, then at most
    `refused_per_s` a second, the rest summed up in one line per client and second."""

    max_bytes: int = 16 << 20
    backups: int = 4
    refused_burst: int = 60
    refused_per_s: float = 10.0
    max_clients: int = 4096


_SIGNATURE = re.compile(r"((?:^|&)signature=)[^&]*")  # a signed URL works for a while: its signature is not logged
MAX_FIELD_CHARS = {"method": 16, "path": 400, "range": 100}
SUMMARY_DELAY_S = 1.0


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"...[{len(text) - limit} more]"


@dataclass
class _Client:
    tokens: float
    refilled: float
    suppressed: int = 0


@dataclass
class RefusalLimiter:
    """A token bucket per client address for the log lines of refused requests; what it holds back is counted."""

    burst: int
    per_s: float
    max_clients: int
    clients: OrderedDict[str, _Client] = field(default_factory=OrderedDict)

    def allow(self, client: str, now: float) -> bool:
        """Whether this refused request gets its own line (else it is counted for the next summary)."""
        state = self.clients.get(client)
        if state is None:
            state = self.clients[client] = _Client(float(self.burst), now)
            while len(self.clients) > self.max_clients:  # forget the longest-quiet client (its count is lost)
                self.clients.popitem(last=False)
        self.clients.move_to_end(client)
        state.tokens = min(float(self.burst), state.tokens + (now - state.refilled) * self.per_s)
        state.refilled = now
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return True
        state.suppressed += 1
        return False

    def take_counts(self) -> list[tuple[str, int]]:
        """(client, refused requests not logged) since the last call, and reset them."""
        counts = [(client, state.suppressed) for client, state in self.clients.items() if state.suppressed]
        for client, _ in counts:
            self.clients[client].suppressed = 0
        return counts


class AccessLog:
    """JSON lines, each written whole with O_APPEND, mode 0600, in the private state folder; rotated by size."""

    def __init__(self, path: Path, options: AccessLogOptions | None = None) -> None:
        self.path = path
        self.options = options or AccessLogOptions()
        self._lock = threading.Lock()
        self._limiter = RefusalLimiter(self.options.refused_burst, self.options.refused_per_s,
                                       self.options.max_clients)
        self._summary: threading.Timer | None = None
        private_dir(path.parent)
        for existing in self.files():
            private_file(existing)

    def files(self) -> list[Path]:
        """The current log and its rotated predecessors that exist, newest first."""
        names = [self.path] + [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.options.backups + 1)]
        return [p for p in names if p.exists()]

    def write(self, entry: dict[str, Any]) -> None:
        self._append((json.dumps(entry, sort_keys=False) + "\n").encode("utf-8"))

    def request(self, entry: dict[str, Any], client_host: str) -> None:
        """Log one answered request; refused ones (status >= 400) are rate-limited per client, and what was held
        back is written as one summary line per client a second later."""
        if entry["status"] < 400:
            self.write(entry)
            return
        with self._lock:
            allowed = self._limiter.allow(client_host, time.monotonic())
            if not allowed and self._summary is None:
                self._summary = threading.Timer(SUMMARY_DELAY_S, self._write_summaries)
                self._summary.daemon = True
                self._summary.start()
        if allowed:
            self.write(entry)

    def _write_summaries(self) -> None:
        with self._lock:
            counts = self._limiter.take_counts()
            self._summary = None
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for client, count in counts:
            self.write({"time": now, "client": client, "refused_not_logged": count,
                        "note": "refused requests beyond the rate limit in the last second, counted only"})

    def _append(self, line: bytes) -> None:
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                size = os.fstat(fd).st_size
                if size and size + len(line) > self.options.max_bytes:
                    os.close(fd)
                    fd = -1
                    self._rotate()
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
                os.write(fd, line)
            finally:
                if fd >= 0:
                    os.close(fd)

    def _rotate(self) -> None:
        names = [self.path] + [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.options.backups + 1)]
        if self.options.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        names[-1].unlink(missing_ok=True)
        for older, newer in zip(reversed(names[:-1]), reversed(names[1:]), strict=True):
            if older.exists():
                os.replace(older, newer)


class AccessLogger:
    """ASGI wrapper: logs every HTTP request when its answer has been sent, with its partner (if authenticated),
    status and the body bytes actually sent."""

    def __init__(self, app: ASGIApp, log: AccessLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        outcome = {"status": 0, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
            elif message["type"] == "http.response.body":
                outcome["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            self.log.request(self._entry(scope, outcome, began), str(client[0]) if client else "?")

    @staticmethod
    def _entry(scope: Scope, outcome: dict[str, int], began: float) -> dict[str, Any]:
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
        path = raw.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + _SIGNATURE.sub(r"\1-", scope["query_string"].decode("latin-1"))
        client = scope.get("client")
        partner: Partner | None = scope.get("state", {}).get("partner")
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "partner": partner.name if partner else None,
            "token_id": partner.token_id if partner else None,
            "method": _clip(str(scope.get("method")), MAX_FIELD_CHARS["method"]),
            "path": _clip(path, MAX_FIELD_CHARS["path"]),
            "range": _clip(header(scope, b"range"), MAX_FIELD_CHARS["range"]),
            "status": outcome["status"] or 500,
            "bytes": outcome["bytes"],
            "client": f"{client[0]}:{client[1]}" if client else None,
            "duration_ms": round((time.monotonic() - began) * 1000, 1),
        }

"""`excap serve`: an authenticated HTTP API that delivers exported datasets and their episodes to partners.

Layout of the served folder DIR: episodes anywhere outside hidden folders (as catalogued by
`excap.catalogue.index`), exported datasets in DIR/exports/<dataset>/, partners and grants in
DIR/.excap/partners.sqlite, and the access log DIR/.excap/access.log (JSON lines, bounded and rotated by size).

Every request must name this server in its Host header and, if it changes anything, come from no other web page
(`excap.web.guard`); then it needs `Authorization: Bearer <token>` (401 otherwise, also for forged and
revoked tokens). A partner sees only the datasets granted to it and the episodes those datasets were exported
from; anything else, whether it exists or not, is 404.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from excap.catalogue.index import EpisodeFilter, EpisodeRecord, select_episodes
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.core.state_dir import FILE_MODE, private_dir, private_file, state_dir
from excap.delivery.partner_episodes import partner_episode, registry_of, scrubber_for
from excap.delivery.partners import Partner, PartnerStore, check_name
from excap.web.guard import AllowedHosts, HostOriginGuard
from excap.web.server import ThreadedServer, bind, is_loopback, server_url

EXPORTS_DIR = "exports"
ACCESS_LOG = "access.log"
CHUNK = 1 << 20
DEFAULT_PORT = 8750
MAX_REMEMBERED_HASHES = 100_000
EPISODE_FILTERS = ("machine_kind", "machine_model", "site", "task", "operator_id", "outcome", "since", "until",
                   "min_duration", "max_duration", "valid")
BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
MAX_RANGES = 16  # more byte ranges in one Range header is malformed (400)
MAX_RANGE_DIGITS = 18  # a byte position longer than this is malformed (400): no file is that large
_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
_ID_KEYS = ("episode_id", "source_episode_id", "excap_episode_id")
_ID_LIST_KEYS = ("episode_ids", "source_episode_ids")
_MAX_JSON_BYTES = 64 << 20
PARQUET_ID_COLUMN = "excap/episode_id"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class NotFound(HTTPException):
    def __init__(self, what: str) -> None:
        super().__init__(status_code=404, detail=f"no such {what}")


# ---------------------------------------------------------------- files, checksums and paths


class Sha256Cache:
    """SHA-256 of files, remembered per (device, inode, size, mtime, ctime) so unchanged files are hashed once. The
    change time cannot be set back, so a file edited in place with its mtime restored is hashed again."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, int, int, int], str] = {}
        self._lock = threading.Lock()

    def of_fd(self, fd: int) -> str:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        offset = 0
        while block := os.pread(fd, CHUNK, offset):
            digest.update(block)
            offset += len(block)
        value = digest.hexdigest()
        with self._lock:
            if len(self._known) >= MAX_REMEMBERED_HASHES:
                self._known.clear()
            self._known[key] = value
        return value

    def of_path(self, path: Path) -> str:
        fd = os.open(path, os.O_RDONLY)
        try:
            return self.of_fd(fd)
        finally:
            os.close(fd)


def contained(base: Path, relative: str) -> Path | None:
    """`base/relative` if it is a regular file inside `base` after resolving symlinks, else None.

    Refuses absolute paths, '..', '.', empty segments, backslashes and NUL bytes outright."""
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    real_base = base.resolve()
    candidate = (real_base / relative).resolve()
    if not candidate.is_relative_to(real_base) or not candidate.is_file():
        return None
    return candidate


def dataset_dir(root: Path, name: str) -> Path | None:
    """The folder of an exported dataset, if the name is plain and the folder is really inside DIR/exports."""
    try:
        check_name(name, "dataset")
    except ConfigError:
        return None
    exports = (root / EXPORTS_DIR).resolve()
    folder = (exports / name).resolve()
    if folder.parent != exports or not folder.is_dir():
        return None
    return folder


def dataset_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, resolved path) of every deliverable file: regular files inside the folder, sorted,
    skipping hidden names and symlinks that lead outside."""
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            relative = (Path(current) / name).relative_to(folder).as_posix()
            path = contained(folder, relative)
            if path is not None:
                yield relative, path


def _collect_ids(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str):
                found.add(item)
            elif key in _ID_LIST_KEYS and isinstance(item, list):
                found.update(i for i in item if isinstance(i, str))
            else:
                _collect_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_ids(item, found)


_ids_cache: dict[tuple[str, int, int], frozenset[str]] = {}
_ids_lock = threading.Lock()


def _ids_in_json(path: Path) -> set[str]:
    found: set[str] = set()
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines() if path.suffix == ".jsonl" else [text]:
        try:
            _collect_ids(json.loads(line), found)
        except ValueError:
            continue
    return found


def _ids_in_parquet(path: Path) -> set[str]:
    """The `excap/episode_id` column of a LeRobot episodes table (meta/episodes/**.parquet)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return set()
    try:
        if PARQUET_ID_COLUMN not in pq.read_schema(path).names:
            return set()
        column = pq.read_table(path, columns=[PARQUET_ID_COLUMN]).column(0).to_pylist()
    except (OSError, ValueError):
        return set()
    return {value for value in column if isinstance(value, str)}


def _file_episode_ids(relative: str, path: Path) -> frozenset[str]:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _ids_lock:
        if key in _ids_cache:
            return _ids_cache[key]
    if path.suffix == ".parquet":
        found = _ids_in_parquet(path) if relative.startswith("meta/") else set()
    else:
        found = _ids_in_json(path) if st.st_size <= _MAX_JSON_BYTES else set()
    with _ids_lock:
        _ids_cache[key] = frozenset(found)
    return _ids_cache[key]


def export_episode_ids(folder: Path) -> set[str]:
    """Episode ids a dataset was exported from (the provenance its export writes): the `excap/episode_id`
    column of LeRobot's meta/**.parquet episode tables, and every `episode_id` / `source_episode_id` /
    `excap_episode_id` value and `episode_ids` / `source_episode_ids` list in its JSON and JSON-lines files.
    Files are read again only when they change."""
    found: set[str] = set()
    for relative, path in dataset_files(folder):
        if path.suffix in (".json", ".jsonl", ".parquet"):
            found |= _file_episode_ids(relative, path)
    return found


# ---------------------------------------------------------------- ranges and file responses


@dataclass
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeError(ValueError):
    """A malformed `bytes=` Range header (answered with 400)."""


def parse_range(header: str, size: int) -> ByteRange | str | None:
    """A Range header: a ByteRange, None to send the whole file (another unit than bytes, or several ranges), or
    "unsatisfiable". RangeError if it is malformed: not `first-last`, `first-` or `-suffix` numbers, more than
    MAX_RANGES ranges or a number of more than MAX_RANGE_DIGITS digits."""
    unit, equals, specs = header.strip().partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",", MAX_RANGES)
    if len(parts) > MAX_RANGES:
        raise RangeError(f"more than {MAX_RANGES} ranges")
    parsed = []
    for part in parts:
        match = _RANGE_SPEC.fullmatch(part)
        if match is None:
            raise RangeError("expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX")
        first, last = match.groups()
        if not first and not last:
            raise RangeError("a range needs at least one number")
        if len(first) > MAX_RANGE_DIGITS or len(last) > MAX_RANGE_DIGITS:
            raise RangeError(f"byte positions have at most {MAX_RANGE_DIGITS} digits")
        parsed.append((first, last))
    if len(parsed) > 1:
        return None
    first, last = parsed[0]
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return ByteRange(start, end)


def _chunks(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with handle:
        offset, remaining = start, length
        while remaining > 0:
            block = os.pread(handle.fileno(), min(CHUNK, remaining), offset)
            if not block:
                break
            offset += len(block)
            remaining -= len(block)
            yield block


def file_response(request: Request, path: Path, hashes: Sha256Cache, filename: str | None = None) -> Response:
    """The file with ETag = its SHA-256, single-range requests (206 / 416), If-Range, If-None-Match and HEAD.
    The checksum and the bytes sent come from the same open file; a file object closes itself when a response
    is abandoned before its body was read."""
    try:
        handle = path.open("rb", buffering=0)
    except OSError as exc:  # removed since it was found
        raise NotFound("file") from exc
    streaming = False
    try:
        st = os.fstat(handle.fileno())
        size = st.st_size
        sha = hashes.of_fd(handle.fileno())
        etag = f'"{sha}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "X-Checksum-Sha256": sha}
        if filename:
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        if request.headers.get("if-none-match") in (etag, "*"):
            return Response(status_code=304, headers=headers)
        status, start, length = 200, 0, size
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if wanted and (if_range is None or if_range == etag):
            try:
                chosen = parse_range(wanted, size)
            except RangeError as exc:
                return JSONResponse({"detail": f"bad Range header: {exc}"}, status_code=400, headers=headers)
            if chosen == "unsatisfiable":
                return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
            if isinstance(chosen, ByteRange):
                status, start, length = 206, chosen.start, chosen.length
                headers["Content-Range"] = f"bytes {chosen.start}-{chosen.end}/{size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type="application/octet-stream")
        streaming = True
        return StreamingResponse(_chunks(handle, start, length), status_code=status, headers=headers,
                                 media_type="application/octet-stream")
    finally:
        if not streaming:
            handle.close()


# ---------------------------------------------------------------- authentication and the access log


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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def bearer_token(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
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
            path += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client")
        partner: Partner | None = scope.get("state", {}).get("partner")
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "partner": partner.name if partner else None,
            "token_id": partner.token_id if partner else None,
            "method": _clip(str(scope.get("method")), MAX_FIELD_CHARS["method"]),
            "path": _clip(path, MAX_FIELD_CHARS["path"]),
            "range": _clip(_header(scope, b"range"), MAX_FIELD_CHARS["range"]),
            "status": outcome["status"] or 500,
            "bytes": outcome["bytes"],
            "client": f"{client[0]}:{client[1]}" if client else None,
            "duration_ms": round((time.monotonic() - began) * 1000, 1),
        }


# ---------------------------------------------------------------- the API

log = logging.getLogger("excap.serve")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def partner_file_name(episode_id: str) -> str:
    """The name a partner sees for an episode file: its id, in plain characters (never the server's file name)."""
    return (_SAFE_FILENAME.sub("_", episode_id)[:200] or "episode") + ".h5"


@dataclass
class Listed:
    public: dict[str, Any]  # what the partner sees
    record: EpisodeRecord  # the catalogue's record (raw: server side only)


class DeliveryService:
    """What the endpoints need from the served folder, for one partner at a time."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hashes = Sha256Cache()
        self._catalogue_lock = threading.Lock()

    def datasets(self, partner: Partner) -> list[dict[str, Any]]:
        listed = []
        for name in partner.grants:
            folder = dataset_dir(self.root, name)
            if folder is None:
                continue
            files = list(dataset_files(folder))
            listed.append({"name": name, "files": len(files), "bytes": sum(_size(p) for _, p in files)})
        return listed

    def folder(self, partner: Partner, name: str) -> Path:
        folder = dataset_dir(self.root, name) if name in partner.grants else None
        if folder is None:
            raise NotFound("dataset")
        return folder

    def manifest(self, partner: Partner, name: str) -> dict[str, Any]:
        folder = self.folder(partner, name)
        files = []
        for relative, path in dataset_files(folder):
            try:
                files.append({"path": relative, "size": path.stat().st_size, "sha256": self.hashes.of_path(path)})
            except OSError:
                continue  # removed while listing
        return {"dataset": name, "files": files}

    def dataset_file(self, partner: Partner, name: str, relative: str) -> Path:
        path = contained(self.folder(partner, name), relative)
        if path is None or any(part.startswith(".") for part in relative.split("/")):
            raise NotFound("file")
        return path

    def listing(self, partner: Partner, query: dict[str, str]) -> list[Listed]:
        """Valid catalogued episodes matching the filters that were exported into one of the partner's datasets, as
        the partner sees them (`excap.datasets.redaction`): the operator as the partner's pseudonym (as in its
        exports, also when filtering), registered names scrubbed, no server paths. Unreadable or invalid files (e.g.
        damaged since the export) are left out."""
        unknown = sorted(set(query) - set(EPISODE_FILTERS) - {"dataset"})
        if unknown:
            shown = ", ".join(name[:40] for name in unknown[:5])
            raise HTTPException(400, f"unknown filter(s): {shown}; use {', '.join(EPISODE_FILTERS)}, dataset")
        query = dict(query)
        operator = query.pop("operator_id", None)
        dataset = query.pop("dataset", None)
        selection = _episode_filter(query)
        names = partner.grants
        if dataset is not None:
            self.folder(partner, dataset)
            names = [dataset]
        membership: dict[str, list[str]] = {}
        for name in names:
            folder = dataset_dir(self.root, name)
            for episode_id in export_episode_ids(folder) if folder else ():
                membership.setdefault(episode_id, []).append(name)
        if not membership:
            return []
        records = [r for r in self._records(selection) if r.episode_id in membership and r.valid]
        registry, _ = registry_of(self.root)
        scrub = scrubber_for(self.root, partner.name, registry, *(r.operator_id for r in records))
        listed = []
        for record in records:
            public = {**scrub.public_record(record), "file": partner_file_name(record.episode_id),
                      "datasets": membership[record.episode_id]}
            if operator is None or public["operator_id"] == operator:
                listed.append(Listed(public, record))
        return listed

    def episodes(self, partner: Partner, query: dict[str, str]) -> list[dict[str, Any]]:
        return [item.public for item in self.listing(partner, query)]

    def episode_file(self, partner: Partner, episode_id: str) -> tuple[str, str]:
        """The episode's file (relative to the folder) and the name the partner sees."""
        for item in self.listing(partner, {}):
            if item.record.episode_id == episode_id and contained(self.root, item.record.path) is not None:
                return item.record.path, item.public["file"]
        raise NotFound("episode")

    def _records(self, selection: EpisodeFilter) -> list[EpisodeRecord]:
        with self._catalogue_lock:
            return select_episodes(self.root, selection, update=True)


def _episode_filter(query: dict[str, str]) -> EpisodeFilter:
    values: dict[str, Any] = {}
    try:
        for key in EPISODE_FILTERS:
            if key not in query:
                continue
            if key in ("min_duration", "max_duration"):
                values[key] = float(query[key]) if len(query[key]) <= 40 else float("nan")
            elif key == "valid":
                if query[key].lower() not in BOOLEANS:
                    raise ConfigError(f"valid must be one of {', '.join(BOOLEANS)}")
                values[key] = BOOLEANS[query[key].lower()]
            else:
                values[key] = query[key]
        return EpisodeFilter(**values).check()
    except (ValueError, ConfigError) as exc:
        raise HTTPException(400, f"bad filter value: {str(exc)[:200]}") from exc


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(root: Path, hosts: AllowedHosts | None = None, log_options: AccessLogOptions | None = None) -> ASGIApp:
    """The delivery API for folder `root`: Host and origin checks, authentication and access logging around it.
    `hosts`: the names the server answers to (default: loopback on DEFAULT_PORT)."""
    root = Path(root)
    service = DeliveryService(root)
    app = FastAPI(title="excap delivery", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(EpisodeError)
    async def undeliverable(_request: Request, exc: EpisodeError) -> JSONResponse:
        log.warning("episode not delivered: %s", exc)
        return _problem(422, "this episode's file cannot be read; it is left out until it is repaired")

    @app.exception_handler(ExcapError)
    async def misconfigured(_request: Request, exc: ExcapError) -> JSONResponse:
        log.error("delivery refused: %s", exc)
        return _problem(503, "the server cannot answer this now (its configuration needs attention)")

    def partner_of(request: Request) -> Partner:
        return request.state.partner

    @app.get("/v1/datasets")
    def list_datasets(request: Request) -> dict[str, Any]:
        return {"datasets": service.datasets(partner_of(request))}

    @app.get("/v1/datasets/{name}/manifest")
    def manifest(request: Request, name: str) -> dict[str, Any]:
        return service.manifest(partner_of(request), name)

    @app.api_route("/v1/datasets/{name}/files/{path:path}", methods=["GET", "HEAD"])
    def dataset_file(request: Request, name: str, path: str) -> Response:
        target = service.dataset_file(partner_of(request), name, path)
        return file_response(request, target, service.hashes)

    @app.get("/v1/episodes")
    def list_episodes(request: Request) -> dict[str, Any]:
        return {"episodes": service.episodes(partner_of(request), dict(request.query_params))}

    @app.api_route("/v1/episodes/{episode_id}", methods=["GET", "HEAD"])
    def episode(request: Request, episode_id: str) -> Response:
        partner = partner_of(request)
        relative, name = service.episode_file(partner, episode_id)
        target = partner_episode(root, partner.name, relative, service.hashes.of_fd)  # redacted copy
        return file_response(request, target, service.hashes, filename=name)

    guarded = HostOriginGuard(Authenticator(app, PartnerStore(root)), hosts or AllowedHosts.for_server(
        "127.0.0.1", DEFAULT_PORT), name="excap serve")
    return AccessLogger(guarded, AccessLog(state_dir(root) / ACCESS_LOG, log_options))


# ---------------------------------------------------------------- running the server


@dataclass
class ServerOptions:
    root: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    allowed_hosts: tuple[str, ...] = ()  # further names clients use (NAME or NAME:PORT), e.g. behind a proxy
    access_log: AccessLogOptions = field(default_factory=AccessLogOptions)

    def check(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"{self.root}: no such folder")
        if not is_loopback(self.host) and not self.allow_remote:
            raise ConfigError(f"refusing to listen on non-loopback address {self.host!r} without --allow-remote")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")


def _uvicorn_config(options: ServerOptions, sock: socket.socket) -> uvicorn.Config:
    scheme = "https" if options.ssl_certfile else "http"
    hosts = AllowedHosts.for_server(options.host, sock.getsockname()[1], options.allowed_hosts, scheme)
    return uvicorn.Config(create_app(options.root, hosts, options.access_log), host=options.host, port=options.port,
                          log_level="warning", access_log=False, server_header=False, lifespan="off",
                          ssl_certfile=str(options.ssl_certfile) if options.ssl_certfile else None,
                          ssl_keyfile=str(options.ssl_keyfile) if options.ssl_keyfile else None)


def serve(options: ServerOptions, on_listening: Callable[[str], None] | None = None) -> None:
    """Serves until interrupted (Ctrl-C / SIGTERM)."""
    options.check()
    sock = bind(options.host, options.port)
    server = uvicorn.Server(_uvicorn_config(options, sock))
    if on_listening:
        on_listening(_url(options, sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _url(options: ServerOptions, sock: socket.socket) -> str:
    return server_url(sock, "https" if options.ssl_certfile else "http")


class BackgroundServer:
    """The API served by uvicorn on a thread (port 0: an ephemeral port), for tests and embedding."""

    def __init__(self, options: ServerOptions) -> None:
        options.check()
        sock = bind(options.host, options.port)
        self.url = _url(options, sock)
        self._server = ThreadedServer(_uvicorn_config(options, sock), sock, "excap-serve")

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        """Starts the thread and returns once uvicorn accepts connections."""
        if not self._server.start(timeout):
            raise RuntimeError("the delivery server did not start")
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

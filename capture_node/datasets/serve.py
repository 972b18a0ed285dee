"""`excap serve`: an authenticated HTTP API that delivers exported datasets and their episodes to partners.

Layout of the served folder DIR: episodes anywhere outside hidden folders (as catalogued by
`capture_node.datasets.catalogue`), exported datasets in DIR/exports/<dataset>/, partners and grants in
DIR/.excap/partners.sqlite, and the access log DIR/.excap/access.log (JSON lines, append-only).

Every request needs `Authorization: Bearer <token>` (401 otherwise, also for forged and revoked tokens). A partner
sees only the datasets granted to it and the episodes those datasets were exported from; anything else, whether
it exists or not, is 404.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from capture_node.datasets.catalogue import EpisodeFilter, EpisodeRecord, select_episodes
from capture_node.datasets.operators import key_path, load_or_create_key, pseudonym
from capture_node.datasets.partner_episodes import partner_episode
from capture_node.datasets.partners import STATE_DIR, Partner, PartnerStore, check_name
from capture_node.errors import ConfigError
from capture_node.http_thread import ThreadedServer, bind, is_loopback, server_url

EXPORTS_DIR = "exports"
ACCESS_LOG = "access.log"
CHUNK = 1 << 20
EPISODE_FILTERS = ("machine_kind", "machine_model", "site", "task", "operator_id", "outcome", "since", "until",
                   "min_duration", "max_duration", "valid")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
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
    """SHA-256 of files, remembered per (device, inode, size, mtime) so unchanged files are hashed once."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, int, int], str] = {}
        self._lock = threading.Lock()

    def of_fd(self, fd: int) -> str:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
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


def parse_range(header: str, size: int) -> ByteRange | str | None:
    """One `bytes=` range: a ByteRange, None to send the whole file (no or unsupported Range, e.g. several
    ranges), or "unsatisfiable"."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
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


def file_response(request: Request, path: Path, hashes: Sha256Cache, filename: str | None = None,
                  known: tuple[int, int, str] | None = None) -> Response:
    """The file with ETag = its SHA-256, single-range requests (206 / 416), If-Range, If-None-Match and HEAD.
    `known` is (size, mtime_ns, sha256) from the catalogue, used while the file still has that size and mtime.
    The checksum and the bytes sent come from the same open file; a file object closes itself when a response
    is abandoned before its body was read."""
    handle = path.open("rb", buffering=0)
    streaming = False
    try:
        st = os.fstat(handle.fileno())
        size = st.st_size
        sha = known[2] if known and known[:2] == (size, st.st_mtime_ns) and known[2] else hashes.of_fd(handle.fileno())
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
            chosen = parse_range(wanted, size)
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


class AccessLog:
    """Appends one JSON object per line; lines are written whole with O_APPEND, never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, sort_keys=False) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


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


class Gatekeeper:
    """ASGI wrapper: authenticates every HTTP request before the app sees it and logs every request with its
    partner, status and the body bytes actually sent."""

    def __init__(self, app: ASGIApp, store: PartnerStore, log: AccessLog) -> None:
        self.app = app
        self.store = store
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

        token = bearer_token(scope)
        partner = await run_in_threadpool(self.store.authenticate, token) if token else None
        try:
            if partner is None:
                denied = JSONResponse({"detail": "a valid bearer token is required"}, status_code=401,
                                      headers={"WWW-Authenticate": 'Bearer realm="excap"'})
                await denied(scope, receive, counting_send)
            else:
                scope.setdefault("state", {})["partner"] = partner
                await self.app(scope, receive, counting_send)
        finally:
            self.log.write(self._entry(scope, partner, outcome, began))

    @staticmethod
    def _entry(scope: Scope, partner: Partner | None, outcome: dict[str, int], began: float) -> dict[str, Any]:
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
        path = raw.decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client")
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "partner": partner.name if partner else None,
            "token_id": partner.token_id if partner else None,
            "method": scope.get("method"),
            "path": path,
            "range": _header(scope, b"range"),
            "status": outcome["status"] or 500,
            "bytes": outcome["bytes"],
            "client": f"{client[0]}:{client[1]}" if client else None,
            "duration_ms": round((time.monotonic() - began) * 1000, 1),
        }


# ---------------------------------------------------------------- the API


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
            listed.append({"name": name, "files": len(files), "bytes": sum(p.stat().st_size for _, p in files)})
        return listed

    def folder(self, partner: Partner, name: str) -> Path:
        folder = dataset_dir(self.root, name) if name in partner.grants else None
        if folder is None:
            raise NotFound("dataset")
        return folder

    def manifest(self, partner: Partner, name: str) -> dict[str, Any]:
        folder = self.folder(partner, name)
        files = [{"path": relative, "size": path.stat().st_size, "sha256": self.hashes.of_path(path)}
                 for relative, path in dataset_files(folder)]
        return {"dataset": name, "files": files}

    def dataset_file(self, partner: Partner, name: str, relative: str) -> Path:
        path = contained(self.folder(partner, name), relative)
        if path is None or any(part.startswith(".") for part in relative.split("/")):
            raise NotFound("file")
        return path

    def episodes(self, partner: Partner, query: dict[str, str]) -> list[dict[str, Any]]:
        """Catalogued episodes matching the filters that were exported into one of the partner's datasets.
        operator_id is the partner's pseudonym of the operator (as in its exports), also when filtering."""
        unknown = sorted(set(query) - set(EPISODE_FILTERS) - {"dataset"})
        if unknown:
            raise HTTPException(400, f"unknown filter(s): {', '.join(unknown)}; use {', '.join(EPISODE_FILTERS)}"
                                     ", dataset")
        query = dict(query)
        operator = query.pop("operator_id", None)
        names = partner.grants
        if "dataset" in query:
            self.folder(partner, query["dataset"])
            names = [query["dataset"]]
        membership: dict[str, list[str]] = {}
        for name in names:
            folder = dataset_dir(self.root, name)
            for episode_id in export_episode_ids(folder) if folder else ():
                membership.setdefault(episode_id, []).append(name)
        if not membership:
            return []
        secret = load_or_create_key(key_path(self.root))
        listed = []
        for record in self._records(_episode_filter(query)):
            if record.episode_id not in membership:
                continue
            item = {**_public(record), "operator_id": pseudonym(secret, partner.name, record.operator_id),
                    "datasets": membership[record.episode_id]}
            if operator is None or item["operator_id"] == operator:
                listed.append(item)
        return listed

    def public_episodes(self, partner: Partner, query: dict[str, str]) -> list[dict[str, Any]]:
        """As `episodes`, without the server's folder layout."""
        return [{k: v for k, v in item.items() if k not in _PRIVATE} for item in self.episodes(partner, query)]

    def episode_file(self, partner: Partner, episode_id: str) -> tuple[Path, tuple[int, int, str]]:
        """The episode's file and its catalogued (size, mtime_ns, sha256)."""
        for record in self.episodes(partner, {}):
            if record["episode_id"] == episode_id:
                path = contained(self.root, record["path"])
                if path is not None:
                    return path, (record["size"], record["mtime_ns"], record["sha256"])
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
                values[key] = float(query[key])
            elif key == "valid":
                values[key] = query[key].lower() in ("1", "true", "yes")
            else:
                values[key] = query[key]
        selection = EpisodeFilter(**values)
        selection.where()  # checks since/until
    except (ValueError, ConfigError) as exc:
        raise HTTPException(400, f"bad filter value: {exc}") from exc
    return selection


def _public(record: EpisodeRecord) -> dict[str, Any]:
    return {**record.as_json(), "file": Path(record.path).name}


_PRIVATE = ("path", "mtime_ns", "problems")


def create_app(root: Path) -> ASGIApp:
    """The delivery API for folder `root`, wrapped in authentication and access logging."""
    root = Path(root)
    service = DeliveryService(root)
    app = FastAPI(title="excap delivery", docs_url=None, redoc_url=None, openapi_url=None)

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
        return {"episodes": service.public_episodes(partner_of(request), dict(request.query_params))}

    @app.api_route("/v1/episodes/{episode_id}", methods=["GET", "HEAD"])
    def episode(request: Request, episode_id: str) -> Response:
        partner = partner_of(request)
        recorded, (_, _, sha256) = service.episode_file(partner, episode_id)
        target = partner_episode(root, partner.name, recorded, sha256)  # operator pseudonymised
        return file_response(request, target, service.hashes, filename=target.name)

    return Gatekeeper(app, PartnerStore(root), AccessLog(root / STATE_DIR / ACCESS_LOG))


# ---------------------------------------------------------------- running the server


@dataclass
class ServerOptions:
    root: Path
    host: str = "127.0.0.1"
    port: int = 8750
    allow_remote: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def check(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"{self.root}: no such folder")
        if not is_loopback(self.host) and not self.allow_remote:
            raise ConfigError(f"refusing to listen on non-loopback address {self.host!r} without --allow-remote")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")


def _uvicorn_config(options: ServerOptions) -> uvicorn.Config:
    return uvicorn.Config(create_app(options.root), host=options.host, port=options.port, log_level="warning",
                          access_log=False, server_header=False, lifespan="off",
                          ssl_certfile=str(options.ssl_certfile) if options.ssl_certfile else None,
                          ssl_keyfile=str(options.ssl_keyfile) if options.ssl_keyfile else None)


def serve(options: ServerOptions, on_listening: Callable[[str], None] | None = None) -> None:
    """Serves until interrupted (Ctrl-C / SIGTERM)."""
    options.check()
    sock = bind(options.host, options.port)
    server = uvicorn.Server(_uvicorn_config(options))
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
        self._server = ThreadedServer(_uvicorn_config(options), sock, "excap-serve")

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

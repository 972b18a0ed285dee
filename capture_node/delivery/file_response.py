"""Delivering one file over HTTP: its SHA-256 as ETag and checksum header (hashed once per file version), single
byte ranges (206 / 416, malformed Range headers 400), If-Range, If-None-Match and HEAD, streamed in chunks."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

__all__ = ["ByteRange", "NotFound", "RangeError", "Sha256Cache", "file_response", "parse_range"]

CHUNK = 1 << 20
MAX_REMEMBERED_HASHES = 100_000
MAX_RANGES = 16  # more byte ranges in one Range header is malformed (400)
MAX_RANGE_DIGITS = 18  # a byte position longer than this is malformed (400): no file is that large
_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")


class NotFound(HTTPException):
    def __init__(self, what: str) -> None:
        super().__init__(status_code=404, detail=f"no such {what}")


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


def file_response(request: Request, path: Path, hashes: Sha256Cache, filename: str | None = None,
                  media_type: str = "application/octet-stream") -> Response:
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
            return Response(status_code=status, headers=headers, media_type=media_type)
        streaming = True
        return StreamingResponse(_chunks(handle, start, length), status_code=status, headers=headers,
                                 media_type=media_type)
    finally:
        if not streaming:
            handle.close()

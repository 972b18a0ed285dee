"""Hostile HTTP requests for fuzzing the station page and the delivery API: a hypothesis strategy, a raw sender that
puts every byte on the wire as generated, and a watch on the server's log for uncaught exceptions."""

import http.client
import json
import logging
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

from hypothesis import strategies as st

SAFE_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
HEADER_TEXT = st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                        st.characters(min_codepoint=0xA0, max_codepoint=0xFF))
SEGMENTS = ["..", ".", "%2e%2e", "%2E%2E%2F", "%2f", "%00", "%ff", "%c0%ae", "~", "", "v1", "api", "datasets",
            "episodes", "files", "manifest", "static", "camera", "status", "start", "stop", "discard", "mark",
            "station.js", "index.html", "..%2f..%2f..%2fetc%2fpasswd", "%252e%252e", "\\..\\..", ";", "a" * 300]
VALUES = ["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "2261-12-31", "2262-04-12", "1677-09-21",
          "1678-01-01", "2026-01-01T25:00", "2026-06-01T12:00:00+14:00", "2261-12-31T23:59:59-14:00", "yesterday", "",
          "9" * 4301, "1e400", "nan", "inf", "-inf", "-0", "0x10", "true", "maybe", "%00", "%ff%fe"]


def mostly(usual: st.SearchStrategy, unusual: st.SearchStrategy, percent: int = 80) -> st.SearchStrategy:
    """`usual` in about `percent` % of the draws: requests must get past the Host and token checks often enough to
    reach the handlers behind them."""
    return st.integers(0, 99).flatmap(lambda roll: usual if roll < percent else unusual)


@dataclass
class RawRequest:
    method: str
    target: str  # path and query, ASCII, sent as is
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def describe(self) -> str:
        return f"{self.method} {self.target[:120]} {[(k, v[:60]) for k, v in self.headers]} body={self.body[:80]!r}"


def _paths(known: Sequence[str]) -> st.SearchStrategy[str]:
    composed = st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(SAFE_TEXT, max_size=20).map(
        lambda t: quote(t, safe="%"))), min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts))
    long = st.integers(500, 20_000).map(lambda n: "/v1/" + "a" * n)
    return mostly(st.sampled_from(list(known)), st.one_of(composed, long), 60)


def queries(keys: Sequence[str]) -> st.SearchStrategy[str]:
    """A query string ('' or '?k=v&...'): mostly the given keys, with hostile dates, numbers and text."""
    value = mostly(st.one_of(st.sampled_from(VALUES), st.dates().map(str), st.datetimes().map(lambda d: d.isoformat())),
                   st.one_of(
        st.integers().map(str), st.floats().map(repr), st.text(SAFE_TEXT, max_size=30).map(lambda t: quote(t, safe="")),
        st.integers(1000, 10_000).map(lambda n: "9" * n)), 50)
    key = mostly(st.sampled_from(list(keys)), st.text(SAFE_TEXT, min_size=1, max_size=12).map(
        lambda t: quote(t, safe="")))
    pairs = st.lists(st.tuples(key, value), max_size=4)
    return pairs.map(lambda items: ("?" + "&".join(f"{k}={v}" for k, v in items)) if items else "")


def ranges() -> st.SearchStrategy[str]:
    """Range header values: mostly one byte range with absurd numbers, else many ranges, other units, garbage."""
    number = st.one_of(st.integers(0, 10**6).map(str), st.integers(-5, 5).map(str),
                       st.sampled_from(["", "0", "9" * 18, "9" * 19, "9" * 4301, "1" * 6000]))
    spec = st.tuples(number, number).map(lambda p: f"{p[0]}-{p[1]}")
    others = st.one_of(st.lists(spec, min_size=2, max_size=40).map(lambda s: "bytes=" + ",".join(s)),
                       st.text(HEADER_TEXT, max_size=60), st.sampled_from(["bytes=0-0", "bytes=-0", "items=1-2"]))
    return mostly(spec.map(lambda s: f"bytes={s}"), others, 60)


def _bodies(keys: Sequence[str]) -> st.SearchStrategy[bytes]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50),
                       st.integers(1000, 50_000).map(lambda n: "x" * n))
    value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                         max_leaves=6)
    document = st.dictionaries(st.one_of(st.sampled_from(list(keys)), st.text(max_size=10)), value, max_size=5)
    return st.one_of(st.just(b""), document.map(lambda d: json.dumps(d).encode()),
                     value.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300),
                     st.just(b"{" * 5000), st.just(b'{"a":' * 2000))


@st.composite
def raw_requests(draw: st.DrawFn, paths: Sequence[str], query_keys: Sequence[str], body_keys: Sequence[str],
                 own_hosts: Sequence[str], origins: Sequence[str], tokens: Sequence[str],
                 methods: Sequence[str] = ("GET", "HEAD")) -> RawRequest:
    """A request, mostly well-formed enough to pass the Host, origin and token checks so that the handlers behind
    them are reached too; `methods` are the ones the server's handlers take."""
    method = draw(mostly(st.sampled_from(methods), st.one_of(
        st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
        st.from_regex(r"[A-Z]{1,10}", fullmatch=True))))
    target = draw(_paths(paths)) + draw(queries(query_keys))
    headers: list[tuple[str, str]] = []
    host = draw(mostly(st.sampled_from(list(own_hosts)), st.one_of(st.text(HEADER_TEXT, max_size=40),
                                                                    st.just("x" * 5000), st.none()), 85))
    if host is not None:
        headers.append(("Host", host))
    auth = draw(mostly(st.sampled_from([f"Bearer {t}" for t in tokens] or ["Bearer none"]), st.one_of(
        st.none(), st.text(HEADER_TEXT, max_size=80).map(lambda t: f"Bearer {t}"), st.text(HEADER_TEXT, max_size=80))))
    if auth is not None:
        headers.append(("Authorization", auth))
    origin = draw(mostly(st.sampled_from([None, *origins]), st.sampled_from(["http://evil.example", "null", ""])))
    if origin is not None:
        headers.append(("Origin", origin))
    content_type = draw(mostly(st.sampled_from(["application/json", "application/json; charset=utf-8"]), st.one_of(
        st.none(), st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "application/ld+json",
                                    "multipart/form-data; boundary=x"]), st.text(HEADER_TEXT, max_size=40)), 60))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if draw(st.booleans()):
        headers.append(("Range", draw(ranges())))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["Referer", "Sec-Fetch-Site", "If-Range", "If-None-Match", "X-Forwarded-Host",
                                     "Cookie", "Accept", "X-Junk"]))
        headers.append((name, draw(st.one_of(st.text(HEADER_TEXT, max_size=100), st.just("v" * 6000)))))
    return RawRequest(method, target, headers, draw(_bodies(body_keys)))


@dataclass
class RawAnswer:
    status: int
    body: bytes
    seconds: float


LARGE_HEAD_BYTES = 8192  # what common servers accept as a request head; beyond it a reset is a fair answer


def head_bytes(request: RawRequest) -> int:
    return len(request.method) + len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def send_raw(port: int, request: RawRequest, timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> RawAnswer:
    """Put the request on a fresh loopback connection byte for byte; read the whole answer.

    A connection reset is status 0 for a request whose head is over LARGE_HEAD_BYTES (a server may drop such a
    request before reading it all, and the kernel then resets the connection), and an error otherwise. A reset
    after the status line arrived keeps the status (the answer was given) with an empty body. `tls`: send over
    HTTPS with this client context."""
    connection = (http.client.HTTPConnection("127.0.0.1", port, timeout=timeout) if tls is None else
                  http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls))
    began = time.monotonic()
    try:
        connection.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value.encode("latin-1"))
        connection.putheader("Content-Length", str(len(request.body)))
        connection.endheaders(request.body)
        response = connection.getresponse()
        try:
            body = response.read() if request.method != "HEAD" else b""
        except ConnectionResetError:  # the status line and headers arrived: the answer is known, its body lost
            body = b""
        return RawAnswer(response.status, body, time.monotonic() - began)
    except (ConnectionResetError, BrokenPipeError):
        if head_bytes(request) <= LARGE_HEAD_BYTES:
            raise
        return RawAnswer(0, b"", time.monotonic() - began)
    finally:
        connection.close()


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def server_errors(*loggers: str) -> Iterator[list[logging.LogRecord]]:
    """Records of level ERROR or with a traceback logged by uvicorn or excap meanwhile (checked by the caller)."""
    collector = _Collector()
    names = loggers or ("uvicorn", "uvicorn.error", "uvicorn.asgi", "excap")
    for name in names:
        logging.getLogger(name).addHandler(collector)
    found: list[logging.LogRecord] = []
    try:
        yield found
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(collector)
        found.extend(r for r in collector.records if r.levelno >= logging.ERROR or r.exc_info)

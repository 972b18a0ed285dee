"""Fuzzing the delivery API with hostile requests: random methods, paths (traversal spellings, encodings, very long),
headers (Host, Origin, Range, Authorization, Content-Type, huge values), query filters and bodies. Never a 5xx,
never an uncaught exception in the server's log, every answer within a time bound. One target runs the app
in-process (many inputs), one sends every request through a real server on a loopback socket."""

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.delivery.access_log import AccessLogOptions
from excap.delivery.api import EPISODE_FILTERS, create_app
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from excap.web.guard import AllowedHosts
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.http_fuzz import HEADER_TEXT, RawRequest, queries, ranges, raw_requests, send_raw, server_errors

EPISODE_ID = "20260601T000000Z_sim-excavator-01_ffffff"
MAX_SECONDS = 5.0


@dataclass
class Site:
    root: Path
    token: str
    port: int = 8750

    def requests(self) -> object:
        hosts = [f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"]
        paths = ["/v1/datasets", "/v1/datasets/set/manifest", "/v1/datasets/set/files/blob.bin",
                 "/v1/datasets/set/files/episodes.jsonl", "/v1/datasets/set/files/../../a.h5", "/v1/episodes",
                 f"/v1/episodes/{EPISODE_ID}", "/v1/episodes/..%2fa.h5", "/docs", "/openapi.json", "/",
                 f"/v1/episodes/{EPISODE_ID}/review-url", "/static/partner/partner.js"]
        return raw_requests(paths, [*EPISODE_FILTERS, "dataset"], ["operator_id"], hosts,
                            [f"http://127.0.0.1:{self.port}"], [self.token])


@pytest.fixture(scope="module")
def site(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("fuzz") / "site"
    root.mkdir()
    shutil.copyfile(sim_episode, root / "a.h5")
    with h5py.File(root / "a.h5", "r+") as handle:
        handle.attrs["episode_id"] = EPISODE_ID
    (root / "exports" / "set").mkdir(parents=True)
    (root / "exports" / "set" / "episodes.jsonl").write_text(json.dumps({"episode_id": EPISODE_ID}) + "\n")
    (root / "exports" / "set" / "blob.bin").write_bytes(bytes(range(256)) * 64)
    store = PartnerStore(root)
    token = store.add("acme")
    store.grant("acme", "set")
    return Site(root, token)


def check(request: RawRequest, status: int, seconds: float) -> None:
    assert status < 500, (status, request.describe())
    assert seconds < MAX_SECONDS, (seconds, request.describe())


class InProcess:
    """The app in this process through httpx's ASGI transport: an exception the app raises fails the test."""

    def __init__(self, site: Site) -> None:
        app = create_app(site.root, AllowedHosts.for_server("127.0.0.1", site.port), AccessLogOptions())
        self.transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        self.base = f"http://127.0.0.1:{site.port}"

    async def _send(self, request: RawRequest) -> tuple[int, float] | None:
        async with httpx.AsyncClient(transport=self.transport, base_url=self.base) as client:
            try:
                built = client.build_request(request.method, request.target, content=request.body,
                                             headers=[(k.encode(), v.encode("latin-1")) for k, v in request.headers])
            except (httpx.InvalidURL, UnicodeError, ValueError):
                return None  # the client library refuses to send it; the raw-socket target covers such requests
            began = time.monotonic()
            response = await client.send(built)
            return response.status_code, time.monotonic() - began

    def send(self, request: RawRequest, target: str) -> None:
        answer = asyncio.run(self._send(request))
        if answer is not None:
            tried(target)
            check(request, *answer)


def test_fuzz_delivery_api_in_process(site: Site) -> None:
    app = InProcess(site)

    @fuzz_settings(300)
    @given(site.requests())
    def run(request: RawRequest) -> None:
        app.send(request, "partner API: any request (in-process)")

    with server_errors() as errors:
        run()
    assert errors == [], [e.getMessage() for e in errors[:3]]


def test_fuzz_episode_filters(site: Site) -> None:
    app = InProcess(site)
    headers = [("Host", f"127.0.0.1:{site.port}"), ("Authorization", f"Bearer {site.token}")]

    @fuzz_settings(300)
    @given(queries([*EPISODE_FILTERS, "dataset"]))
    def run(query: str) -> None:
        app.send(RawRequest("GET", "/v1/episodes" + query, headers), "partner API: episode filters")

    with server_errors() as errors:
        run()
    assert errors == [], [e.getMessage() for e in errors[:3]]


def test_fuzz_ranges(site: Site) -> None:
    app = InProcess(site)
    base = [("Host", f"127.0.0.1:{site.port}"), ("Authorization", f"Bearer {site.token}")]
    conditional = st.sampled_from(["If-Range", "If-None-Match"])

    @fuzz_settings(200)
    @given(st.sampled_from(["GET", "HEAD"]), st.sampled_from(["/v1/datasets/set/files/blob.bin",
                                                              f"/v1/episodes/{EPISODE_ID}"]),
           ranges(), st.lists(st.tuples(conditional, st.text(HEADER_TEXT, max_size=70)), max_size=2))
    def run(method: str, path: str, value: str, extra: list[tuple[str, str]]) -> None:
        app.send(RawRequest(method, path, [*base, ("Range", value), *extra]), "partner API: ranges")

    with server_errors() as errors:
        run()
    assert errors == [], [e.getMessage() for e in errors[:3]]


def test_fuzz_delivery_api_over_a_real_socket(site: Site) -> None:
    options = ServerOptions(root=site.root, port=0, access_log=AccessLogOptions(refused_burst=10))
    with server_errors() as errors, BackgroundServer(options) as server:
        served = Site(site.root, site.token, int(server.url.rsplit(":", 1)[1]))

        @fuzz_settings(150)
        @given(served.requests())
        def run(request: RawRequest) -> None:
            tried("partner API: any request (loopback socket)")
            answer = send_raw(served.port, request)
            check(request, answer.status, answer.seconds)

        run()
    assert errors == [], [e.getMessage() for e in errors[:3]]
    log = site.root / ".excap" / "access.log"
    assert log.is_file() and all(len(line) <= 4096 for line in log.read_bytes().splitlines())

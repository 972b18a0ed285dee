"""The delivery API under hostile requests: absurd Range headers and filters, foreign Host and Origin headers, and
a flood of refused requests against the access log's bounds. A real server on loopback."""

import http.client
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import pytest

from excap.core.state_dir import DIR_MODE, FILE_MODE
from excap.delivery.access_log import AccessLogOptions
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from tests.support import report
from tests.support.waiting import wait_for

EPISODE_ID = "20260501T000000Z_sim-excavator-01_eeeeee"
LOG_LIMITS = AccessLogOptions(max_bytes=32 << 10, backups=2, refused_burst=20, refused_per_s=5.0)


@dataclass
class Site:
    root: Path
    url: str
    token: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def raw(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        """A request sent byte for byte: no Host header added unless given."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def log_files(self) -> list[Path]:
        return sorted((self.root / ".excap").glob("access.log*"))

    def log_lines(self) -> list[bytes]:
        return [line for path in self.log_files() for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def site(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hostile") / "site"
    root.mkdir()
    shutil.copyfile(sim_episode, root / "a.h5")
    with h5py.File(root / "a.h5", "r+") as handle:
        handle.attrs["episode_id"] = EPISODE_ID
    export = root / "exports" / "set"
    export.mkdir(parents=True)
    (export / "episodes.jsonl").write_text(json.dumps({"episode_id": EPISODE_ID}) + "\n")
    (export / "blob.bin").write_bytes(bytes(range(256)) * 40)
    store = PartnerStore(root)
    token = store.add("acme")
    store.grant("acme", "set")
    with BackgroundServer(ServerOptions(root=root, port=0, access_log=LOG_LIMITS)) as server:
        yield Site(root, server.url, token)


def test_absurd_ranges_get_400_or_416_never_500(site: Site) -> None:
    path = "/v1/datasets/set/files/blob.bin"
    with site.client() as client:
        cases = {"bytes=" + "9" * 4300 + "-": 400, "bytes=-" + "1" * 5000: 400, "bytes=0-" + "7" * 19: 400,
                 "bytes=abc": 400, "bytes=1-2-3": 400, "bytes=" + ",".join(["0-0"] * 100): 400,
                 "bytes=99999999999-": 416, "bytes=20-10": 416, "bytes=0-0,5-9": 200, "pages=1-2": 200,
                 "bytes=0-" + "9" * 18: 206}
        for header, status in cases.items():
            answer = client.get(path, headers={"Range": header})
            assert answer.status_code == status, (header[:40], answer.status_code, answer.text[:200])
            if status == 400:
                assert answer.json()["detail"].startswith("bad Range header: ") and len(answer.text) < 300
        assert client.get(f"/v1/episodes/{EPISODE_ID}", headers={"Range": "bytes=" + "9" * 4300 + "-"}
                          ).status_code == 400


def test_out_of_range_and_malformed_filters_get_400(site: Site) -> None:
    with site.client() as client:
        for query in ({"since": "9999-12-31"}, {"until": "9999-12-31"}, {"since": "0001-01-01"},
                      {"until": "9999-12-31T23:59:59+14:00"}, {"since": "2026-13-45"}, {"since": "x" * 10_000},
                      {"min_duration": "nan"}, {"max_duration": "inf"}, {"min_duration": "1e400"},
                      {"min_duration": "9" * 5000}, {"valid": "maybe"}, {"no_such_filter": "1"},
                      {"x" * 5000: "1"}):
            answer = client.get("/v1/episodes", params=query)
            assert answer.status_code == 400, (str(query)[:80], answer.status_code)
            assert len(answer.text) < 600  # the answer does not echo a huge value back
        assert [e["episode_id"] for e in client.get("/v1/episodes", params={"since": "2020-01-01"}).json()[
            "episodes"]] == [EPISODE_ID]
        assert client.get("/v1/episodes", params={"since": "2261-12-31", "valid": "true"}).json() == {"episodes": []}


def test_foreign_host_headers_get_421_whatever_the_token(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.token}"}
    for host in ("evil.example", f"evil.example:{site.port}", f"127.0.0.1.evil.example:{site.port}",
                 f"127.0.0.1:{site.port + 1}", f"localhost.:{site.port}", "", f"127.0.0.1:{site.port}@evil",
                 "x" * 5000):
        status, body = site.raw("GET", "/v1/datasets", {**auth, "Host": host})
        assert status == 421 and json.loads(body)["detail"], (host[:40], status)
    assert site.raw("GET", "/v1/datasets", auth)[0] in (400, 421)  # no Host at all: HTTP/1.1 needs one
    for host in (f"127.0.0.1:{site.port}", f"localhost:{site.port}", f"LOCALHOST:{site.port}", f"[::1]:{site.port}"):
        status, body = site.raw("GET", "/v1/datasets", {**auth, "Host": host})
        assert status == 200 and json.loads(body)["datasets"][0]["name"] == "set", host
    assert site.raw("GET", "/v1/datasets", {"Host": "evil.example"})[0] == 421  # before authentication


def test_cross_origin_state_changing_requests_get_403(site: Site) -> None:
    own = f"http://127.0.0.1:{site.port}"
    base = {"Host": f"127.0.0.1:{site.port}", "Authorization": f"Bearer {site.token}"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": f"http://localhost:{site.port}"},
                    {"Referer": "http://evil.example/page"}, {"Sec-Fetch-Site": "cross-site"}):
        assert site.raw("POST", "/v1/datasets", {**base, **headers}, b"{}")[0] == 403, headers
    for headers in ({"Origin": own}, {"Referer": f"{own}/v1/"}, {"Sec-Fetch-Site": "same-origin"}, {}):
        assert site.raw("POST", "/v1/datasets", {**base, **headers}, b"{}")[0] == 405, headers  # no such method


@pytest.fixture
def quiet_site(tmp_path: Path) -> Iterator[Site]:
    """A server of its own: no earlier refused requests have used up the client's burst."""
    token = PartnerStore(tmp_path).add("acme")
    with BackgroundServer(ServerOptions(root=tmp_path, port=0, access_log=LOG_LIMITS)) as server:
        yield Site(tmp_path, server.url, token)


def test_a_flood_of_refused_requests_keeps_the_log_bounded(quiet_site: Site) -> None:
    site = quiet_site
    sent = 1500
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)  # one keep-alive connection
    try:
        for index in range(sent):
            connection.request("GET", f"/v1/datasets/{'a' * 8000}?n={index}", headers={
                "Range": "bytes=" + "9" * 4000 + "-", "Authorization": "Bearer forged"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 401
    finally:
        connection.close()
    elapsed = time.monotonic() - began

    def flood_lines() -> list[dict]:
        return [json.loads(line) for line in site.log_lines() if b"a" * 100 in line or b"refused_not_logged" in line]

    def counted() -> list[dict] | None:  # every refused request is logged or counted in a summary line
        lines = flood_lines()
        single = sum("status" in e for e in lines)
        return lines if single + sum(e.get("refused_not_logged", 0) for e in lines) == sent else None

    lines = wait_for(counted, message="the refused requests logged or counted")
    single = [e for e in lines if "status" in e]
    summaries = [e for e in lines if "refused_not_logged" in e]
    assert all(e["status"] == 401 and e["partner"] is None for e in single)
    assert LOG_LIMITS.refused_burst <= len(single) <= LOG_LIMITS.refused_burst + LOG_LIMITS.refused_per_s * (
        elapsed + 1) + 1
    assert 1 <= len(summaries) <= elapsed + 2 and all(e["client"] == "127.0.0.1" for e in summaries)
    assert all(len(line) <= 4096 for line in site.log_lines())
    assert all(e["path"].endswith("more]") and len(e["range"]) < 150 for e in single)  # clipped, not dropped
    total = sum(p.stat().st_size for p in site.log_files())
    assert total <= (LOG_LIMITS.backups + 1) * LOG_LIMITS.max_bytes
    report.record("delivery access log", f"bytes logged for {sent} refused 12 KB requests", total)


def test_the_log_rotates_within_its_cap(quiet_site: Site) -> None:
    site = quiet_site
    with site.client() as client:
        for index in range(400):  # answered requests are all logged: the log has to rotate
            assert client.get("/v1/datasets", params={"n": index, "pad": "p" * 600}).status_code == 200
    wait_for(lambda: any(b"?n=399&" in line for line in site.log_lines()), message="the last request logged")
    files = site.log_files()
    assert [p.name for p in files] == ["access.log", "access.log.1", "access.log.2"]
    assert all(p.stat().st_size <= LOG_LIMITS.max_bytes for p in files)
    assert all(p.stat().st_mode & 0o777 == FILE_MODE for p in files)
    assert (site.root / ".excap").stat().st_mode & 0o777 == DIR_MODE

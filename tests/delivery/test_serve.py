"""The delivery API over loopback: a real uvicorn server on an ephemeral port, a real HTTP client."""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import h5py
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from excap.core.errors import ConfigError
from excap.delivery.access_log import AccessLogOptions
from excap.delivery.file_response import RangeError, parse_range
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from excap.episode.validation import validate_episode
from excap.people.registry import key_path, load_or_create_key, pseudonym
from tests.support.paths import REPO
from tests.support.waiting import wait_for

BLOB = bytes(range(256)) * 12_289  # ~3 MiB: several 1 MiB chunks, not a multiple of the chunk size


@dataclass
class Delivery:
    root: Path
    url: str
    acme: str  # granted dig-v1
    bolt: str  # granted secret-v1
    episode_ids: tuple[str, str]  # in dig-v1, in secret-v1

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def raw_get(self, path: str, token: str) -> int:
        """A request whose path is sent byte for byte (no client-side normalisation of '..')."""
        parsed = urlparse(self.url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def log(self) -> list[dict]:
        return [json.loads(line) for line in (self.root / ".excap" / "access.log").read_text().splitlines()]


def _copy_episode(source: Path, target: Path, episode_id: str, outcome: str) -> None:
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as handle:
        handle.attrs["episode_id"] = episode_id
        handle.attrs["outcome"] = outcome


def _export(folder: Path, episode_id: str, lerobot: bool) -> None:
    """A LeRobot v3 export names its source episodes in meta/episodes/*.parquet; other exports in JSON."""
    (folder / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (folder / "data" / "chunk-000").mkdir(parents=True)
    (folder / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0", "total_episodes": 1}))
    if lerobot:
        table = pa.table({"episode_index": [0], "excap/episode_id": [episode_id]})
        pq.write_table(table, folder / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    else:
        (folder / "meta" / "episodes.jsonl").write_text(json.dumps({"episode_index": 0,
                                                                    "source_episode_id": episode_id}) + "\n")
    (folder / "data" / "chunk-000" / "episode_000000.bin").write_bytes(BLOB)
    (folder / ".hidden").write_text("not delivered")


@pytest.fixture(scope="module")
def delivery(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivery]:
    base = tmp_path_factory.mktemp("delivery")
    root = base / "site"
    (root / "episodes").mkdir(parents=True)
    ids = ("20260101T000000Z_sim-excavator-01_aaaaaa", "20260102T000000Z_sim-excavator-01_bbbbbb")
    _copy_episode(sim_episode, root / "episodes" / "a.h5", ids[0], "success")
    _copy_episode(sim_episode, root / "episodes" / "b.h5", ids[1], "failure")
    _export(root / "exports" / "dig-v1", ids[0], lerobot=True)
    _export(root / "exports" / "secret-v1", ids[1], lerobot=False)
    outside = base / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    (root / "exports" / "dig-v1" / "leak.txt").symlink_to(outside / "passwd")
    (root / "exports" / "dig-v1" / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "exports" / "dig-v1" / "alias.bin").symlink_to(Path("data") / "chunk-000" / "episode_000000.bin")
    (root / "exports" / "elsewhere").symlink_to(outside, target_is_directory=True)
    store = PartnerStore(root)
    acme, bolt = store.add("acme"), store.add("bolt")
    store.grant("acme", "dig-v1")
    store.grant("acme", "elsewhere")  # a dataset folder that is a symlink out of exports/ is never served
    store.grant("bolt", "secret-v1")
    unlimited = AccessLogOptions(refused_burst=100_000)  # every line kept: these tests read them back
    with BackgroundServer(ServerOptions(root=root, host="127.0.0.1", port=0, access_log=unlimited)) as server:
        yield Delivery(root, server.url, acme, bolt, ids)


ENDPOINTS = ("/v1/datasets", "/v1/datasets/dig-v1/manifest", "/v1/datasets/dig-v1/files/meta/info.json",
             "/v1/episodes", "/v1/episodes/20260101T000000Z_sim-excavator-01_aaaaaa", "/v1/nothing-here",
             "/docs", "/openapi.json")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_needs_a_valid_token(delivery: Delivery, path: str) -> None:
    token_id = delivery.acme.split("_")[1]
    secret = delivery.acme.split("_", 2)[2]
    forged = f"excap_{token_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    for token in (None, forged, "excap_00000000_" + secret, "not-a-token"):
        with delivery.client(token) as client:
            response = client.get(path)
        assert response.status_code == 401, (path, token)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "dig-v1" not in response.text
    with httpx.Client(base_url=delivery.url) as client:
        assert client.get(path, headers={"Authorization": f"Basic {delivery.acme}"}).status_code == 401


def test_datasets_lists_only_granted_existing_datasets(delivery: Delivery) -> None:
    with delivery.client(delivery.acme) as client:
        listed = client.get("/v1/datasets").json()["datasets"]
    assert [d["name"] for d in listed] == ["dig-v1"]
    with delivery.client(delivery.bolt) as client:
        assert [d["name"] for d in client.get("/v1/datasets").json()["datasets"]] == ["secret-v1"]


def test_manifest_has_every_file_with_size_and_sha256(delivery: Delivery) -> None:
    with delivery.client(delivery.acme) as client:
        manifest = client.get("/v1/datasets/dig-v1/manifest").json()
    folder = delivery.root / "exports" / "dig-v1"
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == {"alias.bin", "data/chunk-000/episode_000000.bin", "meta/episodes/chunk-000/file-000.parquet",
                          "meta/info.json"}
    for path, entry in files.items():
        data = (folder / path).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_another_partners_dataset_is_indistinguishable_from_a_missing_one(delivery: Delivery) -> None:
    with delivery.client(delivery.acme) as client:
        theirs = client.get("/v1/datasets/secret-v1/manifest")
        missing = client.get("/v1/datasets/no-such-set/manifest")
        theirs_file = client.get("/v1/datasets/secret-v1/files/meta/info.json")
        missing_file = client.get("/v1/datasets/no-such-set/files/meta/info.json")
        linked_out = client.get("/v1/datasets/elsewhere/manifest")
    assert theirs.status_code == missing.status_code == linked_out.status_code == 404
    assert theirs.text == missing.text
    assert theirs_file.status_code == missing_file.status_code == 404 and theirs_file.text == missing_file.text


def test_download_ranges_resume_and_etag(delivery: Delivery) -> None:
    path = "/v1/datasets/dig-v1/files/data/chunk-000/episode_000000.bin"
    sha = hashlib.sha256(BLOB).hexdigest()
    with delivery.client(delivery.acme) as client:
        whole = client.get(path)
        assert whole.status_code == 200 and whole.content == BLOB
        assert whole.headers["etag"] == f'"{sha}"' and whole.headers["accept-ranges"] == "bytes"
        first = client.get(path, headers={"Range": "bytes=0-999999"})
        assert first.status_code == 206 and first.headers["content-range"] == f"bytes 0-999999/{len(BLOB)}"
        assert first.content == BLOB[:1_000_000]
        rest = client.get(path, headers={"Range": f"bytes={len(first.content)}-", "If-Range": whole.headers["etag"]})
        assert rest.status_code == 206 and first.content + rest.content == BLOB
        tail = client.get(path, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == BLOB[-10:]
        stale = client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"0000"'})
        assert stale.status_code == 200 and stale.content == BLOB
        beyond = client.get(path, headers={"Range": f"bytes={len(BLOB)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(BLOB)}"
        cached = client.get(path, headers={"If-None-Match": f'"{sha}"'})
        assert cached.status_code == 304 and cached.content == b""
        head = client.head(path, headers={"Range": "bytes=10-19"})
        assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
        inside_link = client.get("/v1/datasets/dig-v1/files/alias.bin", headers={"Range": "bytes=5-9"})
        assert inside_link.status_code == 206 and inside_link.content == BLOB[5:10]


TRAVERSALS = [
    "/v1/datasets/dig-v1/files/../../../outside/passwd",
    "/v1/datasets/dig-v1/files/meta/../../secret-v1/meta/info.json",
    "/v1/datasets/dig-v1/files/%2e%2e/%2e%2e/%2e%2e/outside/passwd",
    "/v1/datasets/dig-v1/files/%2E%2E%2F%2E%2E%2Fsecret-v1%2Fmeta%2Finfo.json",
    "/v1/datasets/dig-v1/files/..%2f..%2fsecret-v1/meta/info.json",
    "/v1/datasets/dig-v1/files//etc/passwd",
    "/v1/datasets/dig-v1/files/%2Fetc%2Fpasswd",
    "/v1/datasets/dig-v1/files/./meta/info.json",
    "/v1/datasets/dig-v1/files/meta//info.json",
    "/v1/datasets/dig-v1/files/leak.txt",
    "/v1/datasets/dig-v1/files/leakdir/passwd",
    "/v1/datasets/dig-v1/files/.hidden",
    "/v1/datasets/dig-v1/files/meta%00/info.json",
    "/v1/datasets/dig-v1/files/meta\\..\\..\\secret-v1\\meta\\info.json",
    "/v1/datasets/%2e%2e/manifest",
    "/v1/datasets/%2e%2e%2fexports%2fsecret-v1/manifest",
    "/v1/datasets/../exports/secret-v1/manifest",
    "/v1/episodes/..%2f..%2fepisodes%2fb.h5",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(delivery: Delivery, path: str) -> None:
    assert delivery.raw_get(path, delivery.acme) in (400, 404)


def test_plain_paths_work_over_the_raw_client(delivery: Delivery) -> None:
    assert delivery.raw_get("/v1/datasets/dig-v1/files/meta/info.json", delivery.acme) == 200
    assert delivery.raw_get("/v1/datasets/dig-v1/files/meta%2Finfo.json", delivery.acme) == 200


def test_episodes_are_those_of_granted_datasets_with_pseudonymous_operators(delivery: Delivery) -> None:
    mine, theirs = delivery.episode_ids
    with delivery.client(delivery.acme) as client:
        listed = client.get("/v1/episodes").json()["episodes"]
        assert [e["episode_id"] for e in listed] == [mine]
        assert listed[0]["datasets"] == ["dig-v1"] and listed[0]["file"] == f"{mine}.h5"  # not the server's name
        assert "path" not in listed[0] and "mtime_ns" not in listed[0] and "problems" not in listed[0]
        with h5py.File(delivery.root / "episodes" / "a.h5") as handle:
            operator = handle.attrs["operator_id"]
        secret = load_or_create_key(key_path(delivery.root))
        assert listed[0]["operator_id"] == pseudonym(secret, "acme", operator) != operator
        assert client.get("/v1/episodes", params={"outcome": "success"}).json()["episodes"] == listed
        assert client.get("/v1/episodes", params={"outcome": "failure"}).json()["episodes"] == []
        assert client.get("/v1/episodes", params={"min_duration": "1000"}).json()["episodes"] == []
        assert client.get("/v1/episodes", params={"operator_id": listed[0]["operator_id"]}).json()["episodes"] \
            == listed
        assert client.get("/v1/episodes", params={"operator_id": operator}).json()["episodes"] == []
        assert client.get("/v1/episodes", params={"dataset": "dig-v1"}).json()["episodes"] == listed
        assert client.get("/v1/episodes", params={"dataset": "secret-v1"}).status_code == 404
        assert client.get("/v1/episodes", params={"path": "x"}).status_code == 400
        assert client.get("/v1/episodes", params={"since": "yesterday"}).status_code == 400
    with delivery.client(delivery.bolt) as client:
        assert [e["episode_id"] for e in client.get("/v1/episodes").json()["episodes"]] == [theirs]


def test_episode_download_with_range_and_etag(delivery: Delivery, tmp_path: Path) -> None:
    mine, theirs = delivery.episode_ids
    recorded = delivery.root / "episodes" / "a.h5"
    with h5py.File(recorded, "r") as f:
        operator = f.attrs["operator_id"]
    with delivery.client(delivery.acme) as client:
        whole = client.get(f"/v1/episodes/{mine}")
        assert whole.status_code == 200
        data = whole.content
        assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        received = tmp_path / "received.h5"
        received.write_bytes(data)
        with h5py.File(received, "r") as f, h5py.File(recorded, "r") as original:
            # the partner's copy: same recording, the operator replaced by the partner's pseudonym
            assert f.attrs["operator_id"].startswith("anon-") and f.attrs["operator_id"] != operator
            assert f.attrs["notes"] == "" and f.attrs["certification"] == ""
            assert f.attrs["episode_id"] == original.attrs["episode_id"]
            for stream in ("control/commands", "control/t_ns"):
                assert (f[stream][()] == original[stream][()]).all()
        assert operator.encode() not in data  # not even in the file's free space
        assert validate_episode(received) == []
        again = client.get(f"/v1/episodes/{mine}")
        assert again.content == data  # the copy is made once and served stably (resumable)
        assert f'filename="{mine}.h5"' in whole.headers["content-disposition"]
        part = client.get(f"/v1/episodes/{mine}", headers={"Range": "bytes=100-"})
        assert part.status_code == 206 and data[:100] + part.content == data
        assert client.get(f"/v1/episodes/{theirs}").status_code == 404
        assert client.get("/v1/episodes/no-such-episode").status_code == 404


def test_revocation_takes_effect_at_once(delivery: Delivery) -> None:
    store = PartnerStore(delivery.root)
    token = store.add("carol")
    store.grant("carol", "dig-v1")
    with delivery.client(token) as client:
        assert client.get("/v1/datasets/dig-v1/manifest").status_code == 200
        store.revoke("carol", "dig-v1")
        assert client.get("/v1/datasets/dig-v1/manifest").status_code == 404
        assert client.get("/v1/datasets").json()["datasets"] == []
        store.revoke("carol")
        assert client.get("/v1/datasets").status_code == 401


def test_every_access_is_logged(delivery: Delivery) -> None:
    marker = "/v1/datasets/dig-v1/files/meta/info.json?logged=1"
    with delivery.client(delivery.acme) as client:
        assert client.get(marker, headers={"Range": "bytes=0-4"}).status_code == 206
    with delivery.client(None) as client:
        assert client.get("/v1/datasets?anonymous=1").status_code == 401

    def marked() -> list[dict] | None:  # a line is written once its response has been sent
        found = [e for e in delivery.log() if "logged=1" in e["path"] or "anonymous=1" in e["path"]]
        return found if len(found) == 2 else None

    granted, anonymous = wait_for(marked, message="two access log lines")
    assert granted["partner"] == "acme" and granted["status"] == 206 and granted["bytes"] == 5
    assert granted["method"] == "GET" and granted["path"] == marker and granted["range"] == "bytes=0-4"
    assert granted["client"].startswith("127.0.0.1:") and granted["time"].endswith("Z")
    assert granted["token_id"] == delivery.acme.split("_")[1]
    assert anonymous["partner"] is None and anonymous["status"] == 401
    assert delivery.acme not in (delivery.root / ".excap" / "access.log").read_text()


def test_refused_traversals_are_logged_as_sent(delivery: Delivery) -> None:
    sent = [f"{path}?trace={i}" for i, path in enumerate(TRAVERSALS)]
    for path in sent:
        assert delivery.raw_get(path, delivery.acme) in (400, 404)

    def traced() -> list[dict] | None:
        found = [e for e in delivery.log() if "?trace=" in e["path"]]
        return found if len(found) == len(sent) else None

    lines = wait_for(traced, message=f"{len(sent)} access log lines of refused traversals")
    assert sorted(e["path"] for e in lines) == sorted(sent)  # logged verbatim, encoded as the client sent them
    assert all(e["status"] in (400, 404) and e["partner"] == "acme" and e["bytes"] < 200 for e in lines)


def test_non_loopback_hosts_need_allow_remote(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.0.2.10", "example.org", "::"):
        with pytest.raises(ConfigError, match="allow-remote"):
            ServerOptions(root=tmp_path, host=host).check()
    for host in ("127.0.0.1", "127.5.0.1", "::1", "localhost"):
        ServerOptions(root=tmp_path, host=host).check()
    ServerOptions(root=tmp_path, host="0.0.0.0", allow_remote=True).check()


def test_parse_range() -> None:
    assert parse_range("bytes=0-0", 10).length == 1
    assert parse_range("bytes=5-100", 10).end == 9
    assert parse_range("bytes=-3", 10).start == 7
    assert parse_range("bytes=-30", 10).start == 0
    assert parse_range("bytes=0-1,4-5", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=7-3", 10) == "unsatisfiable"
    assert parse_range("bytes=10-", 10) == "unsatisfiable"
    assert parse_range("bytes=-0", 10) == "unsatisfiable"
    assert parse_range("bytes=" + "9" * 18 + "-", 10) == "unsatisfiable"
    assert parse_range(" BYTES = 2 - 3 ", 10).length == 2
    for malformed in ("bytes=abc", "bytes=-", "bytes=1-2-3", "bytes=" + "1" * 19 + "-", "bytes=-" + "9" * 4300,
                      "bytes=" + ",".join(["0-1"] * 17), "bytes=0x10-", "bytes=\u0661-"):
        with pytest.raises(RangeError):
            parse_range(malformed, 10)


SERVE_SCRIPT = """
import argparse, sys
from excap.cli.delivery import add_serve_parser, cmd_serve
parser = argparse.ArgumentParser(prog="excap")
add_serve_parser(parser.add_subparsers(dest="command", required=True))
sys.exit(cmd_serve(parser.parse_args(sys.argv[1:])))
"""


def test_serve_command_in_a_subprocess(delivery: Delivery) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, "serve", str(delivery.root), "--port", "0",
                           "--allow-host", "data.example.org"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) as process:
        try:
            line = process.stdout.readline()
            assert line.startswith("serving "), line + process.stderr.read()
            url = line.split(" on ")[1].split()[0]
            assert url.startswith("http://127.0.0.1:")
            with httpx.Client(base_url=url, timeout=30.0) as client:
                assert client.get("/v1/datasets").status_code == 401
                names = client.get("/v1/datasets", headers={"Authorization": f"Bearer {delivery.acme}"}).json()
                for host, status in (("data.example.org", 200), ("data.example.org:443", 200), ("evil.example", 421)):
                    answer = client.get("/v1/datasets", headers={"Authorization": f"Bearer {delivery.acme}",
                                                                 "Host": host})
                    assert answer.status_code == status, host
            assert [d["name"] for d in names["datasets"]] == ["dig-v1"]
        finally:
            process.terminate()
            process.wait(timeout=20)
    refused = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, "serve", str(delivery.root), "--host", "0.0.0.0"],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert refused.returncode != 0 and "allow-remote" in refused.stderr


def _recorded_commands(data: bytes, tmp_path: Path) -> np.ndarray:
    copy = tmp_path / f"copy-{hashlib.sha256(data).hexdigest()[:8]}.h5"
    copy.write_bytes(data)
    with h5py.File(copy, "r") as handle:
        return handle["control/commands"][()]


def test_partner_copies_follow_the_recorded_file_not_its_name(sim_episode: Path, tmp_path: Path) -> None:
    """A file replaced under the same name (even with the old size and mtime), edited in place with its mtime
    set back, or another file of the same name in another folder never gets a stale copy."""
    root = tmp_path / "site"
    ids = ("20260301T000000Z_sim-excavator-01_cccccc", "20260302T000000Z_sim-excavator-01_dddddd")
    for folder, episode_id in zip(("day1", "day2"), ids, strict=True):
        (root / folder).mkdir(parents=True)
        _copy_episode(sim_episode, root / folder / "a.h5", episode_id, "success")
    with h5py.File(root / "day2" / "a.h5", "r+") as handle:
        handle["control/commands"][0] = 0.5  # different content under the same name in another folder
    (root / "exports" / "set").mkdir(parents=True)
    (root / "exports" / "set" / "episodes.jsonl").write_text("".join(json.dumps({"episode_id": i}) + "\n"
                                                                    for i in ids))
    store = PartnerStore(root)
    token = store.add("acme")
    store.grant("acme", "set")
    recorded = root / "day1" / "a.h5"
    with BackgroundServer(ServerOptions(root=root, port=0)) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        first = _recorded_commands(client.get(f"/v1/episodes/{ids[0]}").content, tmp_path)
        other = _recorded_commands(client.get(f"/v1/episodes/{ids[1]}").content, tmp_path)
        assert first[0, 0] != 0.5 and other[0, 0] == 0.5

        before = recorded.stat()
        replacement = root / "day1" / ".a.h5.new"
        shutil.copyfile(recorded, replacement)
        with h5py.File(replacement, "r+") as handle:
            handle["control/commands"][1] = 0.25
        assert replacement.stat().st_size == before.st_size
        os.replace(replacement, recorded)
        os.utime(recorded, ns=(before.st_atime_ns, before.st_mtime_ns))  # same name, size and mtime
        replaced = _recorded_commands(client.get(f"/v1/episodes/{ids[0]}").content, tmp_path)
        assert replaced[1, 0] == 0.25

        with h5py.File(recorded, "r+") as handle:
            handle["control/commands"][2] = -0.75
        os.utime(recorded, ns=(before.st_atime_ns, before.st_mtime_ns))
        edited = _recorded_commands(client.get(f"/v1/episodes/{ids[0]}").content, tmp_path)
        assert edited[2, 0] == -0.75 and edited[1, 0] == 0.25
    copies = sorted(p.name for p in (root / ".excap" / "partner-episodes" / "acme").iterdir())
    assert len(copies) == 2  # the current copy of each episode; older ones removed

"""The partner episode listing over real HTTP: each episode is listed with the SHA-256 and size of the exact bytes
the partner downloads (its redacted copy, not the recorded file), and a partner granted only a robomimic export
sees the episodes that export was made from."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import pytest

from excap.core.digests import file_sha256
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
from excap.delivery.access_log import AccessLogOptions
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from tests.support.recorded_folder import OPERATORS


@dataclass
class Site:
    root: Path
    url: str
    tokens: dict[str, str]  # partner -> token
    exported: list[str]  # episode ids in the robomimic export

    def client(self, partner: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[partner]}"},
                            timeout=60)


@pytest.fixture(scope="module")
def site(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("listing") / "site"
    root.mkdir()
    for path in recorded_dir.glob("*.h5"):
        (root / path.name).write_bytes(path.read_bytes())
    (root / ".excap").mkdir()
    (root / ".excap" / "operators.yaml").write_bytes((recorded_dir / ".excap" / "operators.yaml").read_bytes())
    result = export_robomimic(root, RobomimicExportOptions(out=root / "exports" / "rm-v1", fps=5, partner="rm-only",
                                                           progress=False))
    with h5py.File(result.out, "r") as handle:
        exported = sorted(str(demo.attrs["excap_episode_id"]) for demo in handle["data"].values())
    store = PartnerStore(root)
    tokens = {"rm-only": store.add("rm-only"), "nothing": store.add("nothing")}
    store.grant("rm-only", "rm-v1")
    options = ServerOptions(root=root, port=0, access_log=AccessLogOptions(refused_burst=100_000))
    with BackgroundServer(options) as server:
        yield Site(root, server.url, tokens, exported)


def test_a_robomimic_export_alone_shows_its_episodes(site: Site) -> None:
    assert len(site.exported) == sum(consent for _, consent in OPERATORS.values())  # the consented operators'
    with site.client("rm-only") as client:
        listed = client.get("/v1/episodes").json()["episodes"]
        assert sorted(e["episode_id"] for e in listed) == site.exported
        assert all(e["datasets"] == ["rm-v1"] for e in listed)
        assert client.get("/v1/episodes", params={"dataset": "rm-v1"}).json()["episodes"] == listed
    with site.client("nothing") as client:
        assert client.get("/v1/episodes").json()["episodes"] == []
        assert client.get(f"/v1/episodes/{site.exported[0]}").status_code == 404


def test_listed_sha256_and_size_are_those_of_the_download(site: Site) -> None:
    recorded = {}
    for path in site.root.glob("*.h5"):
        with h5py.File(path, "r") as handle:
            recorded[str(handle.attrs["episode_id"])] = (file_sha256(path), path.stat().st_size)
    with site.client("rm-only") as client:
        listed = client.get("/v1/episodes").json()["episodes"]
        assert listed
        for entry in listed:
            download = client.get(f"/v1/episodes/{entry['episode_id']}")
            assert download.status_code == 200
            assert entry["sha256"] == hashlib.sha256(download.content).hexdigest()
            assert entry["size"] == len(download.content)
            assert (entry["sha256"], entry["size"]) != recorded[entry["episode_id"]]  # not the recorded file's
            head = client.head(f"/v1/episodes/{entry['episode_id']}")
            assert int(head.headers["content-length"]) == entry["size"]
        assert client.get("/v1/episodes").json()["episodes"] == listed  # stable: the copies are cached by content

"""One bad file in a folder: the folder tools skip it with one line and go on.

The folder holds one real recording and real damaged files: a truncated episode, random bytes named .h5, an HDF5
file of another application, an episode whose root attributes have the wrong types and one whose /control/t_ns
holds text. `index`, `list`, `ledger` and `export` (real processes) and the delivery API are run over it, with the
folder's own SQLite catalogue and with a PostgreSQL one.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from excap.core.errors import EpisodeError
from excap.delivery.partner_episodes import partner_episode
from excap.delivery.partners import PartnerStore
from excap.delivery.serve import BackgroundServer, ServerOptions
from tests.support.commands import excap_command
from tests.support.paths import REPO

GOOD_ID = "20260401T080000Z_sim-excavator-01_900001"
BAD = {  # file -> episode id written into it (where there is an HDF5 file to write it into)
    "truncated.h5": "", "random.h5": "", "foreign.h5": "",
    "wrong_attrs.h5": "20260401T090000Z_sim-excavator-01_900002",
    "wrong_dtype.h5": "20260401T100000Z_sim-excavator-01_900003",
}
REGISTRY = """operators:
  - {operator_id: op-good, consent_to_share: true}
  - {operator_id: op-bad, consent_to_share: true}
"""


@dataclass
class Folder:
    root: Path
    good: Path


def _label(path: Path, episode_id: str, operator: str) -> None:
    with h5py.File(path, "r+") as handle:
        handle.attrs.update({"episode_id": episode_id, "operator_id": operator, "outcome": "success"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    from excap.station.sim import SimSessionOptions, run_sim_session

    source = run_sim_session(SimSessionOptions(out_dir=tmp_path_factory.mktemp("source"), duration_s=1.5, cameras=1,
                                               width=160, height=120, fps=10))
    root = tmp_path_factory.mktemp("folder")
    good = root / "good.h5"
    shutil.copyfile(source, good)
    _label(good, GOOD_ID, "op-good")
    (root / "truncated.h5").write_bytes(good.read_bytes()[:100_000])
    (root / "random.h5").write_bytes(np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with h5py.File(root / "foreign.h5", "w") as handle:
        handle.attrs["schema"] = "another.application"
        handle.create_dataset("values", data=np.arange(10))
    for name in ("wrong_attrs.h5", "wrong_dtype.h5"):
        shutil.copyfile(source, root / name)
        _label(root / name, BAD[name], "op-bad")
    with h5py.File(root / "wrong_attrs.h5", "r+") as handle:
        handle.attrs["duration_s"] = "about a minute"
        handle.attrs["started_at"] = np.arange(3)
    with h5py.File(root / "wrong_dtype.h5", "r+") as handle:
        rows = len(handle["control/t_ns"])
        del handle["control/t_ns"]
        handle.create_dataset("control/t_ns", data=np.array([b"soon"] * rows))
    (root / ".excap").mkdir()
    (root / ".excap" / "operators.yaml").write_text(REGISTRY)
    return Folder(root, good)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def catalog_option(catalog: str | None) -> list[str]:
    """The folder's own SQLite catalogue (no option), or a PostgreSQL one."""
    return ["--catalog", catalog] if catalog else []


def lines_naming(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if name in line]


@pytest.mark.parametrize("command", ["index", "list", "ledger"])
def test_folder_commands_skip_each_bad_file_with_one_line(folder: Folder, command: str, catalog: str | None) -> None:
    result = run(command, str(folder.root), *catalog_option(catalog))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for name in ("truncated.h5", "random.h5", "foreign.h5", "wrong_attrs.h5"):
        (line,) = lines_naming(result.stderr, name)
        assert line.startswith("excap: warning: ") and "skipped" in line, line
    # text timestamps make the file either unreadable (skipped) or, where the reader reports them as a problem, an
    # invalid episode: `index` names it once either way, the other commands at most once
    named = len(lines_naming(result.stderr, "wrong_dtype.h5"))
    assert (named == 1) if command == "index" else (named <= 1)
    assert all(line.startswith("excap: warning: ") for line in result.stderr.splitlines())
    if command == "list":
        assert "good.h5" in result.stdout and "valid" in result.stdout
    if command == "ledger":
        (row,) = [line for line in result.stdout.splitlines() if line.startswith("op-good")]
        assert row.split()[1:4] == ["dig-and-load", "1", "0"]


def test_index_json_names_what_was_skipped_and_why(folder: Folder) -> None:
    result = run("index", str(folder.root), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    skipped = {item["path"]: item["problem"] for item in report["skipped"]}
    assert {"truncated.h5", "random.h5", "foreign.h5", "wrong_attrs.h5"} <= set(skipped)
    assert "not an HDF5 file" in skipped["random.h5"] and "not an excap episode" in skipped["foreign.h5"]
    assert all("\n" not in problem and len(problem) <= 300 for problem in skipped.values())


def test_export_skips_bad_files_and_exports_the_rest(folder: Folder, tmp_path: Path, catalog: str | None) -> None:
    out = tmp_path / "demo.hdf5"
    result = run("export", str(folder.root), "--format", "robomimic", "--out", str(out), "--partner", "acme",
                 "--fps", "5", "--no-progress", *catalog_option(catalog))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name in ("truncated.h5", "random.h5", "foreign.h5", "wrong_attrs.h5"):
        assert len(lines_naming(result.stderr, name)) == 1
    with h5py.File(out, "r") as handle:
        assert [handle["data"][demo].attrs["excap_episode_id"] for demo in handle["data"]] == [GOOD_ID]


@pytest.fixture
def served(folder: Folder, catalog: str | None) -> Iterator[tuple[httpx.Client, str]]:
    export = folder.root / "exports" / "mixed"
    export.mkdir(parents=True, exist_ok=True)
    ids = [GOOD_ID, *(i for i in BAD.values() if i)]
    (export / "episodes.jsonl").write_text("".join(json.dumps({"episode_id": i}) + "\n" for i in ids))
    store = PartnerStore(folder.root)
    partner = "acme" if catalog is None else "acme-fleet"  # the folder is shared by both runs
    token = store.add(partner)
    store.grant(partner, "mixed")
    with BackgroundServer(ServerOptions(root=folder.root, port=0, catalog=catalog)) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client, server.url


def test_api_leaves_bad_files_out_of_listings_and_answers_404(served: tuple[httpx.Client, str]) -> None:
    client, _ = served
    for _ in range(2):  # the catalogue is built by the first request, reused by the second
        listing = client.get("/v1/episodes")
        assert listing.status_code == 200
        assert [e["episode_id"] for e in listing.json()["episodes"]] == [GOOD_ID]
    assert client.get(f"/v1/episodes/{GOOD_ID}").status_code == 200
    for episode_id in (i for i in BAD.values() if i):
        answer = client.get(f"/v1/episodes/{episode_id}")
        assert answer.status_code == 404 and answer.json() == {"detail": "no such episode"}


def test_a_file_that_cannot_be_copied_is_one_line_episode_error(folder: Folder) -> None:
    for name in ("truncated.h5", "random.h5"):
        with pytest.raises(EpisodeError) as caught:
            partner_episode(folder.root, "acme", name)
        message = str(caught.value)
        assert message.startswith(f"{name}: cannot be prepared for delivery: ") and "\n" not in message
    assert not list((folder.root / ".excap" / "partner-episodes" / "acme").glob(".*.part"))

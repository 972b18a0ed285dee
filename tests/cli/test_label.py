"""`excap label`: an episode's outcome set after recording, as a `label` event written on a copy and renamed in
place; the effective outcome is what `list`, the catalogue and the ledger count."""

import getpass
import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from excap.core.errors import EpisodeError
from excap.episode.annotations import AnnotationSpan, store_annotation
from excap.episode.labels import effective_outcome, episode_label, label_episode
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from excap.people.ledger import build_ledger, ledger_episodes
from tests.support.commands import excap_command
from tests.support.paths import REPO


@pytest.fixture
def episode(sim_episode: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "episodes" / sim_episode.name
    copy.parent.mkdir()
    shutil.copy(sim_episode, copy)
    return copy


def excap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=120)


def labels_of(path: Path) -> list[dict[str, str]]:
    with EpisodeReader(path) as reader:
        return [e.detail for e in reader.events() if e.kind == "label"]


def test_label_round_trip_from_the_command_line(episode: Path) -> None:
    with h5py.File(episode, "r") as f:
        recorded = f.attrs["outcome"]
        rows_before = f["events/t_ns"].shape[0]
    first = excap("label", str(episode), "--outcome", "failure", "--note", "bucket missed the truck")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{episode}: outcome failure (was {recorded}), labelled by {getpass.getuser()}")
    second = excap("label", str(episode), "--outcome", "success", "--by", "reviewer-7", "--note", "re-checked")
    assert second.returncode == 0, second.stderr
    assert [(d["outcome"], d["previous"], d["by"], d["note"], d["source"]) for d in labels_of(episode)] == [
        ("failure", recorded, getpass.getuser(), "bucket missed the truck", "cli"),
        ("success", "failure", "reviewer-7", "re-checked", "cli")]
    at = labels_of(episode)[-1]["at"]
    assert at.endswith("Z") and at[:4].isdigit()
    with h5py.File(episode, "r") as f:
        assert f.attrs["outcome"] == recorded and f["events/t_ns"].shape[0] == rows_before + 2  # the record stays
    assert validate_episode(episode) == []
    assert episode_label(episode)[1].outcome == "success"  # type: ignore[union-attr]
    shown = excap("inspect", str(episode))
    assert "outcome   success (labelled by reviewer-7 at " in shown.stdout
    listed = excap("list", str(episode.parent), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["outcome"] for row in json.loads(listed.stdout)] == ["success"]
    assert [p.name for p in episode.parent.iterdir() if not p.name.startswith(".excap")] == [episode.name]


def test_ledger_counts_a_labelled_episode(episode: Path) -> None:
    with h5py.File(episode, "r+") as f:
        f.attrs["outcome"] = "unlabeled"  # as a CLI or sim recording without a label is
        start = int(f.attrs["start_t_ns"])
    store_annotation(episode, [AnnotationSpan(start, start + 10**9, "dig", "proposed")], "eng", "accepted")
    before = build_ledger(ledger_episodes(episode.parent, warn=None))
    assert [(r.episodes, r.accepted) for r in before] == [(1, 0)]
    label_episode(episode, "success", by="reviewer-7")
    after = build_ledger(ledger_episodes(episode.parent, warn=None))
    assert [(r.episodes, r.accepted) for r in after] == [(1, 1)] and after[0].accepted_s > 0
    label_episode(episode, "failure", by="reviewer-7")  # a correction counts too
    assert [r.accepted for r in build_ledger(ledger_episodes(episode.parent, warn=None))] == [0]


@pytest.mark.parametrize("args, message", [
    (("--outcome", "maybe"), "excap: error: outcome must be one of success, failure, not 'maybe'"),
    (("--outcome", "aborted"), "excap: error: outcome must be one of success, failure, not 'aborted'"),
])
def test_a_bad_outcome_is_one_line_and_leaves_the_file_alone(episode: Path, args: tuple[str, ...],
                                                              message: str) -> None:
    before = episode.read_bytes()
    result = excap("label", str(episode), *args)
    assert result.returncode == 2 and result.stdout == "" and result.stderr.strip() == message
    assert episode.read_bytes() == before


def test_a_missing_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    missing = excap("label", str(tmp_path / "nope.h5"), "--outcome", "success")
    assert missing.returncode == 2 and missing.stderr.strip() == f"excap: error: {tmp_path / 'nope.h5'}: no such file"
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = [1, 2, 3]
    result = excap("label", str(foreign), "--outcome", "success")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"excap: error: {foreign}: ")
    text = tmp_path / "notes.h5"
    text.write_text("not an episode")
    result = excap("label", str(text), "--outcome", "success")
    assert result.returncode == 2 and result.stderr.strip() == f"excap: error: {text}: not an HDF5 file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.h5", "notes.h5"]


def test_a_write_that_fails_leaves_the_episode_as_it_was(episode: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The label goes to a copy; a failure before the rename (here: the copy cannot be renamed) never touches the
    episode, and the copy is removed."""
    before = episode.read_bytes()

    def refuse(*_args: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        label_episode(episode, "success", by="x")
    assert episode.read_bytes() == before and sorted(episode.parent.iterdir()) == [episode]


def test_the_labelled_file_stays_valid_and_the_effective_outcome_is_the_latest(episode: Path) -> None:
    label_episode(episode, "failure", note="first", by="a")
    label_episode(episode, "success", note="second", by="b")
    assert validate_episode(episode) == []
    with EpisodeReader(episode) as reader:
        assert effective_outcome(reader.events(), "aborted") == "success"
    with pytest.raises(EpisodeError, match="outcome must be one of success, failure"):
        label_episode(episode, "unlabeled")


def test_labels_given_at_once_are_all_kept(episode: Path) -> None:
    import threading

    errors: list[BaseException] = []

    def give(index: int) -> None:
        try:
            label_episode(episode, "success" if index % 2 else "failure", note=f"label {index}", by=f"r{index}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=give, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sorted(d["note"] for d in labels_of(episode)) == [f"label {i}" for i in range(4)]
    assert validate_episode(episode) == []


def test_an_overlong_note_is_one_line_naming_the_file(episode: Path) -> None:
    result = excap("label", str(episode), "--outcome", "success", "--note", "x" * 2001)
    assert result.returncode == 2
    assert result.stderr.strip() == f"excap: error: {episode}: note is 2001 characters, at most 2000"

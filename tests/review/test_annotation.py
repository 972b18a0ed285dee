"""Phase proposals against the scripted operator's phases; storing annotations safely; validation."""

import argparse
import itertools
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from excap.cli.annotate import add_annotate_parser, cmd_annotate, proposal_table
from excap.core.errors import ExcapError
from excap.episode.annotations import (
    Annotation,
    AnnotationSpan,
    apply_to_episode,
    read_annotation,
    sidecar_path,
    write_sidecar,
)
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from excap.review.phases import (
    agreement,
    frame_agreement,
    frame_times,
    labels_of,
    markers,
    propose_phases,
    scripted_phases,
)
from tests.support import report

MIN_AGREEMENT = 0.90
LABELS = labels_of("excavator")


@pytest.fixture(scope="module")
def long_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 s of the scripted operator: one whole dig cycle (dig, swing loaded, dump, swing empty, about 13 s) and
    the start of the next, with a marker raised while recording.

    The command link's stale-input timeout is widened so that a loaded test machine pausing the operator's
    thread cannot latch the machine into neutral: the operator's phases stay the machine's real phases."""
    import excap.station.sim as sim

    out = tmp_path_factory.mktemp("long_episode")
    return sim.run_sim_session(sim.SimSessionOptions(out_dir=out, duration_s=18.0, cameras=0, seed=3,
                                                     operator_id="op-long", stale_timeout_s=1.0),
                               on_started=lambda recorder: recorder.event("marker", label="check bite"))


@pytest.fixture
def episode(sim_episode: Path, tmp_path: Path) -> Path:
    copy = tmp_path / sim_episode.name
    shutil.copy(sim_episode, copy)
    return copy


def _annotate(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_annotate_parser(parser.add_subparsers(dest="command"))
    return cmd_annotate(parser.parse_args(["annotate", *argv]))


def test_proposal_agrees_with_the_scripted_operator(long_episode: Path) -> None:
    with EpisodeReader(long_episode) as reader:
        frames = frame_times(reader, 0.1)
        proposed = propose_phases(reader)
        truth = scripted_phases(reader)
        assert not [e for e in reader.events() if e.kind == "neutralised"], "the machine stopped following"
    agreeing_s, covered_s = agreement(proposed, truth)
    share = agreeing_s / covered_s
    report.record("phase proposals", "excavator: agreement with operator_phase (time share)", round(share, 4))
    report.record("phase proposals", "excavator: seconds with a truth phase", round(covered_s, 1))
    print(f"excavator agreement with operator_phase: {share:.3f} of {covered_s:.1f} s")
    assert covered_s > 15.0
    assert abs(frame_agreement(proposed, truth, frames) - share) < 0.02  # the 0.1 s grid samples the same
    assert share >= MIN_AGREEMENT
    assert {"dig", "swing_loaded", "dump", "swing_empty"} <= {p.label for p in proposed}


def test_proposal_is_contiguous_and_smooth(long_episode: Path) -> None:
    with EpisodeReader(long_episode) as reader:
        start, end = reader.start_t_ns, int(reader.metadata["end_t_ns"])
        proposed = propose_phases(reader, min_segment_s=1.0)
    assert proposed[0].t_start_ns == start and proposed[-1].t_end_ns == end
    for before, after in itertools.pairwise(proposed):
        assert before.t_end_ns == after.t_start_ns and before.label != after.label
    assert all(p.label in LABELS and 0.0 <= p.confidence <= 1.0 for p in proposed)
    assert all(p.duration_s >= 0.9 for p in proposed)


def test_markers_show_beside_the_proposal(long_episode: Path) -> None:
    marks = markers(long_episode)
    assert [m.detail["label"] for m in marks] == ["check bite"]
    with EpisodeReader(long_episode) as reader:
        table = proposal_table(propose_phases(reader), marks, reader.start_t_ns)
    assert "check bite" in table.splitlines()[1] and "markers:" in table


def test_accept_then_edit_replaces_the_group(episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _annotate(str(episode), "--out", "phases.json") == 0
    document = json.loads((tmp_path / "phases.json").read_text())
    proposal = propose_phases(episode)
    assert len(document["phases"]) == len(proposal)
    assert _annotate(str(episode), "--accept", "--author", "eng-1") == 0
    first = read_annotation(episode)
    assert first is not None and first.status == "accepted" and first.revision == 1 and first.author == "eng-1"
    assert [(s.t_start_ns, s.t_end_ns, s.label, s.source) for s in first.spans] == \
        [(p.t_start_ns, p.t_end_ns, p.label, "proposed") for p in proposal]
    assert validate_episode(episode) == []

    duration = document["duration_s"]
    document["phases"][-1]["label"] = "idle" if document["phases"][-1]["label"] != "idle" else "travel"
    (tmp_path / "phases.json").write_text(json.dumps(document))
    assert _annotate(str(episode), "--edit", "phases.json", "--author", "eng-2") == 0
    second = read_annotation(episode)
    assert second is not None and second.revision == 2 and second.author == "eng-2"
    assert [s.source for s in second.spans] == ["proposed"] * (len(proposal) - 1) + ["engineer"]
    assert second.spans[-1].t_end_ns - second.spans[0].t_start_ns <= round(duration * 1e9) + 1_000_000
    assert _annotate(str(episode), "--reject", "--reason", "bucket hit the truck") == 0
    third = read_annotation(episode)
    assert third is not None and (third.status, third.revision, third.reason) == \
        ("rejected", 3, "bucket hit the truck")
    assert third.spans == second.spans
    assert validate_episode(episode) == []
    with h5py.File(episode) as handle:
        assert set(handle["annotations"]) == {"t_start_ns", "t_end_ns", "label", "source"}
        assert handle["annotations/t_start_ns"].dtype == np.int64


def test_edit_mistakes_are_refused(episode: Path, tmp_path: Path) -> None:
    edit = tmp_path / "bad.json"
    edit.write_text(json.dumps({"phases": [{"start_s": 0.0, "end_s": 2.0, "label": "dig"},
                                           {"start_s": 1.0, "end_s": 3.0, "label": "dump"}]}))
    with pytest.raises(ExcapError, match="overlapping"):
        _annotate(str(episode), "--edit", str(edit))
    edit.write_text(json.dumps({"phases": [{"start_s": 0.0, "end_s": 1.0, "label": "scoop"}]}))
    with pytest.raises(ExcapError, match="not one of"):
        _annotate(str(episode), "--edit", str(edit))
    assert read_annotation(episode) is None


def _annotation(episode: Path, status: str, revision: int) -> Annotation:
    with EpisodeReader(episode) as reader:
        start = reader.start_t_ns
    return Annotation([AnnotationSpan(start, start + 1_000_000_000, "dig", "engineer")], "eng", status, revision)


def test_crash_between_sidecar_and_hdf5_write_recovers_on_read(episode: Path) -> None:
    first = _annotation(episode, "rejected", 1)
    write_sidecar(episode, first)
    apply_to_episode(episode, first)  # an earlier, complete write (its sidecar was removed)
    sidecar_path(episode).unlink()
    update = _annotation(episode, "accepted", 2)
    write_sidecar(episode, update)  # ... then the process dies before the HDF5 write
    assert sidecar_path(episode).exists()
    stale = read_annotation(episode, recover=False)
    assert stale is not None and stale.status == "rejected"
    recovered = read_annotation(episode)
    assert recovered is not None and (recovered.status, recovered.revision) == ("accepted", 2)
    assert recovered.spans == update.spans
    assert not sidecar_path(episode).exists()
    assert validate_episode(episode) == []


def test_crash_after_hdf5_write_and_validate_applies_the_sidecar(episode: Path) -> None:
    update = _annotation(episode, "accepted", 1)
    write_sidecar(episode, update)
    apply_to_episode(episode, update)  # dies before removing the sidecar: applying again is harmless
    assert validate_episode(episode) == []
    assert not sidecar_path(episode).exists()
    stored = read_annotation(episode, recover=False)
    assert stored is not None and stored.spans == update.spans and stored.revision == 1


def test_interrupted_sidecar_write_leaves_the_episode_untouched(episode: Path) -> None:
    temporary = sidecar_path(episode).with_name(sidecar_path(episode).name + ".tmp")
    temporary.write_text('{"spans": [')  # died while writing the sidecar itself
    assert read_annotation(episode) is None
    assert not temporary.exists()
    assert validate_episode(episode) == []


def test_validation_checks_the_annotations_group(episode: Path) -> None:
    apply_to_episode(episode, _annotation(episode, "accepted", 1))
    with h5py.File(episode, "r+") as handle:
        handle["annotations"].attrs["status"] = "maybe"
        del handle["annotations/label"]
        handle["annotations"].create_dataset("label", data=["scoop"], dtype=h5py.string_dtype())
        del handle["annotations"].attrs["author"]
    problems = "\n".join(validate_episode(episode))
    assert "attribute 'status' is 'maybe'" in problems
    assert "'scoop' not one of" in problems
    assert "attribute 'author' is missing" in problems

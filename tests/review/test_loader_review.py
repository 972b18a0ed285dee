"""Reviewing wheel loader episodes: phases proposed from the loader's own signals against the simulator's truth,
annotation with the loader's labels, the review video and the signal plot with the loader's signals and sticks."""

import argparse
import itertools
import json
import shutil
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest

from excap.cli.annotate import add_annotate_parser, cmd_annotate
from excap.core.errors import EpisodeError, ExcapError
from excap.drivers.machine.profiles import load_profile
from excap.episode.annotations import read_annotation
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from excap.review.kinds import kind_review, known_kinds, review_signals
from excap.review.panel import stick_layout
from excap.review.phases import agreement, labels_of, propose_phases, scripted_phases
from excap.review.plot import plot_signals, plot_size_px, signal_figure
from excap.review.render import PanelSource, render_review_video, review_timing
from tests.support import report
from tests.support.loader_episodes import LOADER_SECONDS, LOADER_SEEDS, LoaderEpisodes

MIN_AGREEMENT = 0.90
LOADER_LABELS = {"load", "haul_loaded", "dump", "return_empty", "idle"}
EXCAVATOR_WORDS = ("boom", "arm pitch", "swing", "left", "right", "pump")


def test_loader_proposal_agrees_with_the_scripted_operator(loader_episodes: LoaderEpisodes) -> None:
    agreeing = covered = 0.0
    cycles = 0
    for path in loader_episodes.paths:
        with EpisodeReader(path) as reader:
            assert not [e for e in reader.events() if e.kind == "neutralised"], "the machine stopped following"
            proposed, truth = propose_phases(reader), scripted_phases(reader)
        seconds = agreement(proposed, truth)
        agreeing, covered = agreeing + seconds[0], covered + seconds[1]
        cycles += sum(p.label == "dump" for p in truth)
        assert {"load", "haul_loaded", "dump", "return_empty"} <= {p.label for p in proposed}
        assert {p.label for p in proposed} <= LOADER_LABELS
    share = agreeing / covered
    report.record("phase proposals", "wheel loader: agreement with operator_phase (time share)", round(share, 4))
    report.record("phase proposals", "wheel loader: seconds with a truth phase", round(covered, 1))
    report.record("phase proposals", "wheel loader: dumps in the truth", cycles)
    report.record("phase proposals", "wheel loader: recording wall time (s)", round(loader_episodes.wall_s, 1))
    print(f"wheel loader agreement with operator_phase: {share:.3f} of {covered:.0f} s ({cycles} dumps)")
    assert covered >= 0.9 * len(LOADER_SEEDS) * LOADER_SECONDS and cycles >= len(LOADER_SEEDS)
    assert share >= MIN_AGREEMENT


def test_loader_proposal_is_contiguous_and_smooth(loader_episodes: LoaderEpisodes) -> None:
    with EpisodeReader(loader_episodes.paths[1]) as reader:
        start, end = reader.start_t_ns, int(reader.metadata["end_t_ns"])
        proposed = propose_phases(reader, min_segment_s=1.0)
    assert proposed[0].t_start_ns == start and proposed[-1].t_end_ns == end
    for before, after in itertools.pairwise(proposed):
        assert before.t_end_ns == after.t_start_ns and before.label != after.label
    assert all(0.0 <= p.confidence <= 1.0 for p in proposed) and all(p.duration_s >= 0.9 for p in proposed)
    assert np.mean([p.confidence for p in proposed]) > 0.7


def test_the_phase_model_is_chosen_by_machine_kind() -> None:
    assert set(known_kinds()) >= {"excavator", "wheel_loader"}
    assert set(labels_of("wheel_loader")) == LOADER_LABELS
    assert "dig" in labels_of("excavator") and "dig" not in labels_of("wheel_loader")
    loader = kind_review("wheel_loader")
    assert all(name.startswith(("Loader", "EEC", "ETC", "CCVS", "EBC")) for name in loader.phases.signals)
    assert [s.name for s in review_signals("wheel_loader")] == [s.name for s in loader.signals]
    with pytest.raises(EpisodeError, match="no review of machine kind 'bulldozer'"):
        kind_review("bulldozer")


def _annotate(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_annotate_parser(parser.add_subparsers(dest="command"))
    return cmd_annotate(parser.parse_args(["annotate", *argv]))


def test_loader_annotation_stores_loader_labels(loader_episodes: LoaderEpisodes, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    episode = tmp_path / loader_episodes.paths[2].name
    shutil.copy(loader_episodes.paths[2], episode)
    monkeypatch.chdir(tmp_path)
    assert _annotate(str(episode), "--out", "phases.json") == 0
    document = json.loads((tmp_path / "phases.json").read_text())
    assert set(document["labels"]) == LOADER_LABELS
    assert _annotate(str(episode), "--accept", "--author", "eng-1") == 0
    stored = read_annotation(episode)
    assert stored is not None and {s.label for s in stored.spans} >= {"load", "haul_loaded", "dump"}
    assert validate_episode(episode) == []
    document["phases"][0]["label"] = "dig"  # an excavator's phase
    (tmp_path / "phases.json").write_text(json.dumps(document))
    with pytest.raises(ExcapError, match="'dig' is not one of load"):
        _annotate(str(episode), "--edit", "phases.json")


def _read_video(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_loader_review_video_shows_the_loaders_signals_and_sticks(loader_episodes: LoaderEpisodes,
                                                                  tmp_path: Path) -> None:
    episode = loader_episodes.with_cameras
    out = tmp_path / "loader.mp4"
    count = render_review_video(episode, out, fps=2.0, progress=False)
    with EpisodeReader(episode) as reader:
        assert reader.metadata["machine_kind"] == "wheel_loader"
        assert count == len(review_timing(reader, 2.0).times) == _read_video(out) > 50
        overlay = PanelSource(reader)
        state = overlay.state(int(reader.camera("front").t_ns[len(reader.camera("front")) // 2]))
    shown = [label for label, _ in state.signals]
    assert shown == [s.label for s in kind_review("wheel_loader").signals]
    assert not any(word in label for label in shown for word in EXCAVATOR_WORDS)
    assert [name for name, _ in state.commands] == list(load_profile("wheel_loader_20t").functions)
    axes = load_profile("wheel_loader_20t").axes
    assert list(state.stick_axes) == list(axes)
    layout = stick_layout(list(state.stick_axes))
    assert layout.sticks == (("lever1", "lever1_x", "lever1_y"),)
    assert layout.bars == ("steer_x", "lever2_y", "throttle_pedal", "brake_pedal")
    assert set(layout.labels) <= set(axes) | {"lever1"}
    payload = dict(state.signals)["payload"]
    assert payload.endswith(" kg")


def test_loader_plot_has_the_loaders_series(loader_episodes: LoaderEpisodes, tmp_path: Path) -> None:
    episode = loader_episodes.paths[1]
    expected = kind_review("wheel_loader").signals
    figure = signal_figure(episode)
    try:
        commands, *panels = figure.axes
        series = [line.get_label() for line in commands.lines if not line.get_label().startswith("_")]  # not events
        assert series == list(load_profile("wheel_loader_20t").functions)
        assert [panel.lines[0].get_label() for panel in panels] == [s.name for s in expected]
        labels = [panel.get_ylabel() for panel in panels]
        assert labels == [f"{s.label}\n[{s.unit}]" for s in expected]
        assert not any(word in label for label in labels for word in EXCAVATOR_WORDS)
    finally:
        plt.close(figure)
    out = plot_signals(episode, tmp_path / "loader.png")
    image = cv2.imread(str(out))
    assert image is not None and (image.shape[1], image.shape[0]) == plot_size_px(len(expected))
    assert image.std() > 10

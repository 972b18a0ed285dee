"""A machine kind's review is one module in excap.review.kinds: adding one changes no tool."""

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

import excap.review.kinds as kinds
from excap.episode.reader import EpisodeReader
from excap.review.kinds import kind_review, known_kinds, review_signals
from excap.review.phases import labels_of, propose_phases
from excap.review.plot import plot_series
from excap.review.render import PanelSource
from tests.support.loader_episodes import LoaderEpisodes

DUMPER = '''
import numpy as np

from excap.review.phase_model import FrameLabels, KindReview, ReviewSignal


class DumperPhases:
    labels = ("tipping", "driving")
    truth_labels = {}
    signals = ("LoaderLinkage.BucketAngle",)

    def label_frames(self, frames, smoothing):
        tipping = frames.signal("LoaderLinkage.BucketAngle") < 0
        return FrameLabels(np.where(tipping, "tipping", "driving").astype(object), np.ones(len(frames)))


REVIEW = KindReview("site_dumper", (ReviewSignal("body angle", "LoaderLinkage.BucketAngle", "deg"),), DumperPhases())
'''


@pytest.fixture
def dumper_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A third kind, as a module in a folder of excap.review.kinds' package path."""
    folder = tmp_path / "kinds"
    folder.mkdir()
    (folder / "site_dumper.py").write_text(DUMPER)
    monkeypatch.setattr(kinds, "__path__", [*kinds.__path__, str(folder)])
    yield "site_dumper"
    sys.modules.pop("excap.review.kinds.site_dumper", None)
    kind_review.cache_clear()


def test_a_new_kind_is_one_module(dumper_kind: str, loader_episodes: LoaderEpisodes, tmp_path: Path) -> None:
    assert dumper_kind in known_kinds() and labels_of(dumper_kind) == ("tipping", "driving")
    episode = tmp_path / "dumper.h5"
    shutil.copyfile(loader_episodes.paths[0], episode)
    with h5py.File(episode, "r+") as handle:
        handle.attrs["machine_kind"] = dumper_kind
    phases = propose_phases(episode)
    assert {p.label for p in phases} == {"tipping", "driving"}
    assert np.all(np.diff([p.t_start_ns for p in phases]) > 0)
    assert [s.name for s in review_signals(dumper_kind)] == ["LoaderLinkage.BucketAngle"]
    with EpisodeReader(episode) as reader:
        assert [(s.label, s.unit) for s in plot_series(reader)] == [("body angle", "deg")]
        state = PanelSource(reader).state(int(reader.camera("front").t_ns[10]))
    assert [label for label, _ in state.signals] == ["body angle"]

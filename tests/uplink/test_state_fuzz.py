"""Damaged or foreign uplink state files never break the status or the uploader: they are started afresh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.uplink.state import EpisodeState, PartRecord, load_episode, save_episode, state_dir, state_path
from excap.uplink.status import summary
from tests.support.fuzzing import fuzz_settings, tried

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=6), max_leaves=20)


def test_state_round_trip(tmp_path: Path) -> None:
    state = EpisodeState("day1/a.h5", 10, 20, sha256="ab", bucket="b", key="p/day1/a.h5", upload_id="u",
                         part_size=5, parts={1: PartRecord("e1", "s1", 5), 2: PartRecord("e2", "s2", 5)})
    save_episode(tmp_path, state)
    assert load_episode(tmp_path, "day1/a.h5") == state
    assert load_episode(tmp_path, "other.h5") is None


@fuzz_settings(150)
@given(content=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()),
       fields=st.dictionaries(st.sampled_from(["relative", "size", "mtime_ns", "parts", "verified_at", "problem",
                                               "upload_id"]), JSON, max_size=4))
def test_damaged_state_files_are_ignored(tmp_path_factory: pytest.TempPathFactory, sim_episode: Path, content: bytes,
                                         fields: dict[str, object]) -> None:
    tried("uplink state files")
    root = tmp_path_factory.mktemp("state")
    shutil.copy(sim_episode, root / "a.h5")
    good = EpisodeState("a.h5", 1, 2).to_json()
    path = state_path(root, "a.h5")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    (state_dir(root) / "other.json").write_text(json.dumps({**good, **fields}))
    (state_dir(root) / "uploader.json").write_bytes(content)
    loaded = load_episode(root, "a.h5")
    assert loaded is None or loaded.relative == "a.h5"
    state = summary(root)
    assert state.pending_episodes + state.invalid <= 1 and isinstance(state.line(), str)

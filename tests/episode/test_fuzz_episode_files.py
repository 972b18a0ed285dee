"""Fuzz: hypothesis-driven mutations of a real episode fed to the reader, `excap inspect` and `excap validate`.

Bit flips (mostly in metadata), truncations, and attributes or datasets replaced by generated values. Readers
may only raise EpisodeError (one line naming the file), validate never raises, and nothing hangs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader
from excap.episode.summary import summarize, summary_json, summary_text
from excap.episode.validation import validate_episode
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.hostile_episodes import compact_copy, flip_bit, metadata_offsets

CALL_LIMIT_S = 10.0
ATTRIBUTE_HOLDERS = ["/", "control", "control/commands", "cameras/side", "can/can0", "joystick/operator/axes",
                     "can/can0/decoded/EEC1/EngSpeed", "events"]
ATTRIBUTE_NAMES = ["schema", "schema_version", "start_t_ns", "end_t_ns", "duration_s", "episode_id", "names",
                   "unit", "dropped", "fd", "width", "height", "nominal_fps", "outcome", "x"]
COLUMNS = ["control/t_ns", "control/commands", "control/enabled", "cameras/side/t_ns", "cameras/side/frames",
           "can/can0/id", "can/can0/dlc", "can/can0/data", "can/can0/decoded/EEC1/EngSpeed", "events/t_ns",
           "events/kind", "events/detail", "joystick/operator/axes"]

attribute_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(), st.text(max_size=40), st.booleans(),
    st.binary(max_size=20).map(np.bytes_),
    hnp.arrays(st.sampled_from([np.int64, np.float64, np.uint8, np.bool_]), hnp.array_shapes(max_dims=2, max_side=8)),
    st.lists(st.text(max_size=8), max_size=8).map(lambda items: np.array(items, dtype=h5py.string_dtype())),
)
dataset_values = hnp.arrays(st.sampled_from([np.int64, np.int32, np.float64, np.float32, np.uint8, np.bool_]),
                            hnp.array_shapes(min_dims=0, max_dims=3, max_side=12))


@pytest.fixture(scope="module")
def base(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, list[int]]:
    path = compact_copy(sim_episode, tmp_path_factory.mktemp("fuzz-base") / "base.h5", window_s=0.3)
    return path, path.read_bytes(), metadata_offsets(path)


def exercise(path: Path) -> None:
    """Every reader entry point on one file: only EpisodeError may come out, each within CALL_LIMIT_S."""
    def timed(action: object) -> None:
        started = time.monotonic()
        try:
            action()  # type: ignore[operator]
        except EpisodeError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        assert time.monotonic() - started < CALL_LIMIT_S

    def read() -> None:
        with EpisodeReader(path) as reader:
            for info in reader.streams:
                stream = reader.stream(info.path)
                if len(stream):
                    _ = stream[0], stream[-1]
            reader.events()
            for _ in reader.steps(rate_hz=20):
                pass

    def inspect() -> None:
        summary = summarize(path)
        summary_text(summary)
        summary_json(summary)

    timed(read)
    timed(inspect)
    started = time.monotonic()
    problems = validate_episode(path)  # reports, never raises
    assert time.monotonic() - started < CALL_LIMIT_S
    assert all("\n" not in p for p in problems)


@fuzz_settings(60)
@given(data=st.data())
def test_bit_flips_and_truncations(base: tuple[Path, bytes, list[int]], tmp_path_factory: pytest.TempPathFactory,
                                   data: st.DataObject) -> None:
    _, original, metadata = base
    mutated = original
    if data.draw(st.booleans(), label="truncate"):
        mutated = mutated[:data.draw(st.integers(0, len(original) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            offset = data.draw(st.sampled_from(metadata) if data.draw(st.booleans()) else
                               st.integers(0, len(original) - 1), label="offset")
            mutated = flip_bit(mutated, offset, data.draw(st.integers(0, 7), label="bit"))
    target = tmp_path_factory.getbasetemp() / "fuzz-flip.h5"
    target.write_bytes(mutated)
    tried("episode file bit flips and truncations")
    exercise(target)


@fuzz_settings(60)
@given(data=st.data())
def test_replaced_attributes_and_datasets(base: tuple[Path, bytes, list[int]],
                                          tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    path, _, _ = base
    target = tmp_path_factory.getbasetemp() / "fuzz-edit.h5"
    shutil.copyfile(path, target)
    with h5py.File(target, "r+") as handle:
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            if data.draw(st.booleans(), label="attribute"):
                holder = handle[data.draw(st.sampled_from(ATTRIBUTE_HOLDERS), label="holder")]
                name = data.draw(st.sampled_from(ATTRIBUTE_NAMES), label="name")
                value = data.draw(attribute_values, label="value")
                try:
                    holder.attrs[name] = value
                except (TypeError, ValueError):
                    continue  # a value h5py cannot store at all
            else:
                column = data.draw(st.sampled_from(COLUMNS), label="column")
                values = data.draw(dataset_values, label="values")
                group, _, name = column.rpartition("/")
                del handle[group][name]
                handle[group].create_dataset(name, data=values)
    tried("episode file attributes and datasets replaced")
    exercise(target)

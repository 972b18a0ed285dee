"""Outcome labels given after recording: `label` events, and the effective outcome they make.

An episode's root attribute `outcome` is what was recorded (success, failure, aborted, unlabeled). A later
`excap label` or the station page's "Last episodes" adds a `label` event (detail: `outcome`, `previous` effective
outcome, `note`, `by`, `at` UTC time, `source`); the root attribute is left as recorded. The **effective outcome**
is the latest label's, else the recorded one: it is what the catalogue, `excap list`, the exports' selection and
the ledger count.

Writing never opens the only copy of an episode for writing: the file is copied beside itself (a hidden
`.<name>.label-<random>` file, skipped by folder tools), the event is appended to the copy, the copy is flushed,
fsynced and checked, and then atomically renamed over the episode (the folder fsynced). An interruption before the
rename leaves the episode as it was (and at most the hidden copy); after it, the labelled episode. Labels of one
folder are written one at a time (an flock on the folder), so labels given at once are all kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py

from excap.core.clock import utc_now_iso
from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader, Event

LABEL_EVENT = "label"
LABEL_OUTCOMES = ("success", "failure")
MAX_NOTE_CHARS = 2000
MAX_BY_CHARS = 200


@dataclass(frozen=True)
class Label:
    outcome: str
    previous: str
    note: str
    by: str
    at: str  # UTC ISO 8601
    source: str = "cli"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check_outcome(outcome: str) -> str:
    if outcome not in LABEL_OUTCOMES:
        raise EpisodeError(f"outcome must be one of {', '.join(LABEL_OUTCOMES)}, not {outcome!r}")
    return outcome


def latest_label(events: Iterable[Event]) -> Label | None:
    """The last `label` event with a valid outcome, if any."""
    found = None
    for event in events:
        if event.kind == LABEL_EVENT and event.detail.get("outcome") in LABEL_OUTCOMES:
            found = event.detail
    if found is None:
        return None
    return Label(str(found["outcome"]), str(found.get("previous", "")), str(found.get("note", "")),
                 str(found.get("by", "")), str(found.get("at", "")), str(found.get("source", "")))


def effective_outcome(events: Iterable[Event], recorded: str) -> str:
    """The latest label's outcome, else the recorded one."""
    label = latest_label(events)
    return label.outcome if label is not None else recorded


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _growable(group: h5py.Group, name: str) -> h5py.Dataset:
    """The group's 1-D dataset `name`, rewritten as a chunked, resizable one if it is not (files written by other
    tools may store /events contiguously); dtype and attributes are kept."""
    dataset = group[name]
    if dataset.chunks is not None and dataset.maxshape[0] is None:
        return dataset
    data, attrs, dtype = dataset[()], dict(dataset.attrs), dataset.dtype
    del group[name]
    grown = group.create_dataset(name, data=data, dtype=dtype, maxshape=(None,), chunks=(max(1, min(len(data), 1024)),))
    grown.attrs.update(attrs)
    return grown


def _append_event(path: Path, t_ns: int, detail: dict[str, Any]) -> None:
    with h5py.File(path, "r+") as handle:
        events = handle["events"]
        rows = int(events["t_ns"].shape[0])
        for name, value in (("t_ns", t_ns), ("kind", LABEL_EVENT), ("detail", json.dumps(detail))):
            dataset = _growable(events, name)
            dataset.resize((rows + 1,))
            dataset[rows] = value
        handle.flush()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Labels of one folder are written one at a time (an exclusive flock on the folder itself), so two labels
    given at once both end up in the file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def label_episode(path: str | Path, outcome: str, note: str = "", by: str = "", source: str = "cli") -> Label:
    """Add a `label` event to the episode at `path` (see the module for how it is written safely)."""
    path = Path(path)
    check_outcome(outcome)
    for name, text, limit in (("note", note, MAX_NOTE_CHARS), ("by", by, MAX_BY_CHARS)):
        if len(text) > limit:
            raise EpisodeError(f"{path}: {name} is {len(text)} characters, at most {limit}")
    if not path.is_file():
        raise EpisodeError(f"{path}: no such file")
    with _folder_lock(path.parent):
        return _label(path, outcome, note, by, source)


def _label(path: Path, outcome: str, note: str, by: str, source: str) -> Label:
    from excap.episode.annotations import recover_annotation
    from excap.episode.validation import validate_episode

    with EpisodeReader(path) as reader:  # refuses a missing, foreign or damaged file in one line
        if "events" not in {s.path for s in reader.streams}:
            raise EpisodeError(f"{path}: has no /events to add a label to")
        events = reader.events()
        recorded = _text(reader.metadata.get("outcome", ""))
        last_t_ns = max([int(reader.metadata.get("end_t_ns", 0) or 0), reader.start_t_ns]
                        + [e.t_ns for e in events])
    was_valid = not validate_episode(path)
    recover_annotation(path)  # a leftover annotation sidecar goes in first, so the copy holds it
    label = Label(outcome, effective_outcome(events, recorded), note, by, utc_now_iso(), source)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.label-", dir=path.parent)
    os.close(fd)
    copy = Path(name)
    try:
        shutil.copyfile(path, copy)
        shutil.copymode(path, copy)
        _append_event(copy, last_t_ns, label.as_json())
        _fsync(copy)
        problems = validate_episode(copy)
        if was_valid and problems:
            raise EpisodeError(f"{path}: not labelled, the labelled copy would not be valid: {problems[0]}")
        os.replace(copy, path)
    except BaseException:
        with contextlib.suppress(OSError):
            copy.unlink()
        raise
    _fsync(path.parent)
    return label


def episode_label(path: str | Path) -> tuple[str, Label | None]:
    """The recorded outcome and the latest label of an episode file."""
    with EpisodeReader(path) as reader:
        return _text(reader.metadata.get("outcome", "")), latest_label(reader.events())


__all__ = ["LABEL_EVENT", "LABEL_OUTCOMES", "Label", "check_outcome", "effective_outcome", "episode_label",
           "label_episode", "latest_label"]

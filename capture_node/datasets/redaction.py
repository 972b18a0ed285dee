"""What of an episode may reach a partner: an allow-list, and the identities scrubbed from what it lets through.

`write_redacted` copies an episode into a new, empty HDF5 file keeping only what this module names:

- root attributes in ROOT_ATTRIBUTES: `operator_id` becomes the partner's pseudonym, `certification` and `notes`
  become empty (the schema requires them), any other attribute is dropped;
- stream groups matching STREAM_GROUPS with their numeric datasets, the group attributes in GROUP_ATTRIBUTES and
  dataset attributes in DATASET_ATTRIBUTES (`source` of a camera only when it names a simulated or ROS source,
  `dbc` reduced to the file name); other groups, text datasets and attributes are dropped;
- events whose kind is in EVENT_DETAILS, each with only the detail keys listed for its kind (`operator_id`
  pseudonymised, free text such as marker labels, certification texts and error messages dropped); events of
  other kinds, and the simulator's truth (WITHHELD_EVENTS: `operator_phase`), are dropped whole;
- the annotation's spans, status, revision and time; its author becomes empty and its reason is dropped.

Every text that passes is then scrubbed (`Scrubber`): an operator id inside it is replaced by its pseudonym,
and a text holding a registered operator's name, certificate number or other registry detail becomes empty. The
catalogue records partners see and the records exports are made from go through the same scrubber.

Editing a copy in place would leave the old bytes in the file's free space, so the copy is written afresh.
Adding an event kind, attribute or group to excap means deciding here whether partners may see it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import h5py
import numpy as np

from excap.catalogue.index import EpisodeRecord
from excap.people.registry import OperatorRegistry

REDACTION_VERSION = 4  # part of the partner copies' cache key: raise it whenever this policy changes

KEEP, PSEUDONYM, EMPTY = "keep", "pseudonym", "empty"

ROOT_ATTRIBUTES = {
    "schema": KEEP, "schema_version": KEEP, "episode_id": KEEP, "started_at": KEEP, "start_t_ns": KEEP,
    "end_t_ns": KEEP, "duration_s": KEEP, "clock_offset_ns": KEEP, "machine_kind": KEEP, "machine_model": KEEP,
    "machine_id": KEEP, "profile": KEEP, "control_pattern": KEEP, "site": KEEP, "task": KEEP, "outcome": KEEP,
    "software": KEEP, "recovered": KEEP,
    "operator_id": PSEUDONYM,
    "certification": EMPTY, "notes": EMPTY,
}
UNSCRUBBED_ROOT = ("schema", "episode_id", "started_at")  # identifiers the catalogue and exports refer to

STREAM_GROUPS = tuple(re.compile(pattern) for pattern in (
    r"control", r"joystick", r"joystick/[^/]+", r"can", r"can/[^/]+", r"can/[^/]+/decoded",
    r"can/[^/]+/decoded/[^/]+", r"cameras", r"cameras/[^/]+",
))
GROUP_ATTRIBUTES = ("description", "dropped", "backend", "device_name", "interface", "fd", "frame_id", "width",
                    "height", "encoding", "nominal_fps", "dbc", "source")
DATASET_ATTRIBUTES = ("names", "units", "unit")
_PUBLIC_SOURCE = re.compile(r"^(sim|ros2):[A-Za-z0-9_./~-]{0,200}$")

# kind -> detail keys kept (all others dropped); "operator_id" is pseudonymised wherever it is kept.
EVENT_DETAILS: dict[str, tuple[str, ...]] = {
    "start": ("episode_id",),
    "stop": ("reason",),
    "metadata": ("outcome", "operator_id", "site", "task", "machine_id"),
    "recovered": ("journal_records", "torn_tail", "recovered_at_t_ns"),
    "drop": ("stream", "count", "stage"),
    "fault": ("channel", "device", "camera", "stream", "reconnecting", "reason", "thread", "before_start", "problem"),
    "fault_cleared": ("device", "problem", "after_s"),
    "start_override": ("devices", "reasons", "source"),  # not `by`: the operator who started
    "label": ("outcome", "previous", "at", "source"),  # not `by` (who labelled) nor the free-text `note`
    "reconnect": ("channel", "interface", "reconnects", "camera", "attempts", "down_s", "width", "height", "fps"),
    "camera_lost": ("camera",),
    "joystick_lost": ("device",),
    "joystick_back": ("device",),
    "can_bus_off": ("channel", "source", "rx", "tx"),
    "can_error_passive": ("channel", "source", "rx", "tx"),
    "can_error_active": ("channel", "source", "rx", "tx"),
    "can_restarted": ("channel", "source", "rx", "tx"),
    "can_error_frame": ("channel", "id", "data", "tx_errors", "rx_errors"),
    "dm1": ("channel", "source_address", "lamps", "flash", "dtcs"),
    "marker": ("index",),
    "station_action": ("action", "source", "outcome"),
    "certification": ("state",),
    "neutralised": ("reason",),
    "command_restored": ("after",),
    "enable_refused": ("reason",),
    "clock_jump": ("jump_s",),
}
# Event kinds excap records that partners never see, not even as a bare row: `operator_phase` is the simulator's
# ground truth of the scripted operator's work phase (what phase proposals are measured against), not a recording.
WITHHELD_EVENTS: tuple[str, ...] = ("operator_phase",)

ANNOTATION_GROUP = "annotations"
ANNOTATION_ATTRIBUTES = {"status": KEEP, "revision": KEEP, "created_at": KEEP, "author": EMPTY}
ANNOTATION_DATASETS = ("t_start_ns", "t_end_ns", "label", "source")

PUBLIC_RECORD_FIELDS = ("episode_id", "machine_kind", "machine_model", "machine_id", "site", "task", "operator_id",
                        "outcome", "started_at", "duration_s", "recovered", "valid", "streams", "sha256", "size")
MIN_IDENTITY_CHARS = 3


@dataclass(frozen=True)
class Identities:
    """What identifies people: operator ids (shown to partners only as pseudonyms) and private details (names,
    certificate numbers, anything else the registry keeps about an operator) that never leave."""

    operators: frozenset[str] = frozenset()
    private: frozenset[str] = frozenset()

    @classmethod
    def of_registry(cls, registry: OperatorRegistry | None, *operator_ids: str) -> Identities:
        operators = {o for o in operator_ids if o}
        private: set[str] = set()
        for operator in (registry.operators.values() if registry else ()):
            operators.add(operator.operator_id)
            private.add(operator.display_name)
            private.update(_strings(operator.extra))
            for certificate in operator.certificates:
                private.update(_strings(certificate.extra))
        private.discard("")
        return cls(frozenset(operators), frozenset(p for p in private if len(p) >= MIN_IDENTITY_CHARS))


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


@dataclass
class Scrubber:
    """Replaces operator ids by pseudonyms inside texts, and empties texts holding a private detail."""

    identities: Identities
    pseudonym_of: Callable[[str], str]
    _private: tuple[str, ...] = field(init=False)
    _operators: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._private = tuple(p.casefold() for p in self.identities.private)
        self._operators = tuple(sorted(self.identities.operators, key=len, reverse=True))

    def operator(self, operator_id: str) -> str:
        return self.pseudonym_of(operator_id) if operator_id else ""

    def text(self, value: str) -> str:
        folded = value.casefold()
        if any(secret in folded for secret in self._private):
            return ""
        for operator in self._operators:
            if operator in value and (len(operator) >= MIN_IDENTITY_CHARS or value == operator):
                value = value.replace(operator, self.pseudonym_of(operator))
        return value

    def value(self, value: Any) -> Any:
        """Any JSON-like or attribute value, with every text in it scrubbed."""
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace")).encode("utf-8")
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
            return np.array([self.value(v) for v in value.ravel()], dtype=value.dtype).reshape(value.shape)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def record(self, record: EpisodeRecord) -> EpisodeRecord:
        """A catalogue record as a partner may see it: the operator pseudonymised, texts scrubbed, no problems
        (they name server paths)."""
        texts: dict[str, Any] = {name: self.text(getattr(record, name))
                                 for name in ("machine_kind", "machine_model", "machine_id", "site", "task", "outcome")}
        streams = [{**s, "path": self.text(str(s.get("path", "")))} for s in record.streams]
        return replace(record, operator_id=self.operator(record.operator_id), problems=[], streams=streams, **texts)

    def public_record(self, record: EpisodeRecord) -> dict[str, Any]:
        scrubbed = self.record(record).as_json()
        return {name: scrubbed[name] for name in PUBLIC_RECORD_FIELDS}


# ---------------------------------------------------------------- the episode copy


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def redact_detail(kind: str, detail: str, scrub: Scrubber) -> str | None:
    """An event's detail JSON as a partner may see it; None if the event is not shown at all."""
    allowed = EVENT_DETAILS.get(kind)
    if allowed is None or kind in WITHHELD_EVENTS:
        return None
    try:
        parsed = json.loads(detail)
    except ValueError:
        parsed = {}
    kept: dict[str, Any] = {}
    if isinstance(parsed, dict):
        for key in allowed:
            if key not in parsed:
                continue
            value = parsed[key]
            kept[key] = scrub.operator(_text(value)) if key == "operator_id" else scrub.value(value)
    return json.dumps(kept, sort_keys=True)


def _group_attribute(name: str, value: Any, scrub: Scrubber) -> Any:
    if name == "source":
        text = _text(value)
        return scrub.text(text) if _PUBLIC_SOURCE.match(text) else ""
    if name == "dbc":
        text = _text(value)
        return scrub.text(PureWindowsPath(PurePosixPath(text).name).name)
    return scrub.value(value)


def _is_text(dataset: h5py.Dataset) -> bool:
    return h5py.check_string_dtype(dataset.dtype) is not None or dataset.dtype.kind in "SU"


def _copy_stream(source: h5py.Group, copy: h5py.File, path: str, scrub: Scrubber) -> None:
    group = copy.create_group(path)
    for name in GROUP_ATTRIBUTES:
        if name in source.attrs:
            group.attrs[name] = _group_attribute(name, source.attrs[name], scrub)
    for name, item in source.items():
        child = f"{path}/{name}"
        if isinstance(item, h5py.Group):
            if any(pattern.fullmatch(child) for pattern in STREAM_GROUPS):
                _copy_stream(item, copy, child, scrub)
        elif isinstance(item, h5py.Dataset) and not _is_text(item):
            source.copy(item, group, name, without_attrs=True)
            for attr in DATASET_ATTRIBUTES:
                if attr in item.attrs:
                    group[name].attrs[attr] = scrub.value(item.attrs[attr])


def _copy_events(events: h5py.Group, copy: h5py.File, scrub: Scrubber) -> None:
    t_ns = events["t_ns"][()]
    kinds = [_text(k) for k in events["kind"][()]]
    details = [_text(d) for d in events["detail"][()]]
    rows = [(t, kind, redact_detail(kind, detail, scrub)) for t, kind, detail in zip(t_ns, kinds, details, strict=True)]
    rows = [(t, kind, detail) for t, kind, detail in rows if detail is not None]
    group = copy.create_group("events")
    if "description" in events.attrs:
        group.attrs["description"] = scrub.value(events.attrs["description"])
    text = h5py.string_dtype("utf-8")
    group.create_dataset("t_ns", data=np.array([r[0] for r in rows], dtype=np.int64), maxshape=(None,))
    group.create_dataset("kind", data=np.array([r[1] for r in rows], dtype=object), dtype=text, maxshape=(None,))
    group.create_dataset("detail", data=np.array([r[2] for r in rows], dtype=object), dtype=text, maxshape=(None,))


def _copy_annotations(annotations: h5py.Group, copy: h5py.File, scrub: Scrubber) -> None:
    group = copy.create_group(ANNOTATION_GROUP)
    for name, rule in ANNOTATION_ATTRIBUTES.items():
        if name in annotations.attrs:
            group.attrs[name] = "" if rule == EMPTY else scrub.value(annotations.attrs[name])
    for name in ANNOTATION_DATASETS:
        item = annotations.get(name)
        if not isinstance(item, h5py.Dataset):
            continue
        if _is_text(item):
            values = [scrub.text(_text(v)) for v in item[()]]
            group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8"))
        else:
            annotations.copy(item, group, name, without_attrs=True)


def write_redacted(source: h5py.File, copy: h5py.File, scrub: Scrubber) -> None:
    """Copy `source` into the new, empty file `copy`, keeping only what this module allows."""
    for name, rule in ROOT_ATTRIBUTES.items():
        if name not in source.attrs:
            continue
        value = source.attrs[name]
        if rule == PSEUDONYM:
            value = scrub.operator(_text(value))
        elif rule == EMPTY:
            value = ""
        elif name not in UNSCRUBBED_ROOT:
            value = scrub.value(value)
        copy.attrs[name] = value
    for name, item in source.items():
        if name == "events" and isinstance(item, h5py.Group):
            _copy_events(item, copy, scrub)
        elif name == ANNOTATION_GROUP and isinstance(item, h5py.Group):
            _copy_annotations(item, copy, scrub)
        elif isinstance(item, h5py.Group) and any(pattern.fullmatch(name) for pattern in STREAM_GROUPS):
            _copy_stream(item, copy, name, scrub)

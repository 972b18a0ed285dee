"""Storing phase annotations in a finished episode (/annotations), so that a crash cannot lose or corrupt them.

Writing happens in three steps:

1. the whole annotation goes to a sidecar `<episode>.annotations.json` next to the episode, atomically
   (temporary file, fsync, rename, fsync of the folder);
2. the episode is opened `r+` and its /annotations group is replaced (nothing else in the file is touched);
3. the sidecar is removed.

A sidecar that is still there means step 2 may not have completed: `recover_annotation` (called by
`read_annotation`, `excap annotate`, the ledger and `excap validate`) applies it again and removes it. Applying
is idempotent (the group is replaced with the sidecar's content, revision included), so a crash at any point
leaves either the previous annotation, or the new one once the sidecar has been applied.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from excap.core.errors import EpisodeError

GROUP = "annotations"
SIDECAR_SUFFIX = ".annotations.json"
STATUSES = ("accepted", "rejected")
SOURCES = ("proposed", "engineer")


@dataclass(frozen=True)
class AnnotationSpan:
    t_start_ns: int
    t_end_ns: int
    label: str
    source: str = "proposed"


@dataclass
class Annotation:
    spans: list[AnnotationSpan]
    author: str
    status: str
    revision: int = 1
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Annotation:
        spans = [AnnotationSpan(int(s["t_start_ns"]), int(s["t_end_ns"]), str(s["label"]), str(s["source"]))
                 for s in data["spans"]]
        return cls(spans, str(data["author"]), str(data["status"]), int(data["revision"]), str(data["created_at"]),
                   str(data.get("reason", "")))


def sidecar_path(episode: str | Path) -> Path:
    episode = Path(episode)
    return episode.with_name(episode.name + SIDECAR_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_sidecar(episode: str | Path, annotation: Annotation) -> Path:
    """Step 1: the annotation, durable, under the sidecar's name (never half-written)."""
    target = sidecar_path(episode)
    temporary = target.with_name(target.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(annotation.to_json(), handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    _fsync_dir(target.parent)
    return target


def apply_to_episode(episode: str | Path, annotation: Annotation) -> None:
    """Step 2: replace the episode's /annotations group with `annotation`."""
    spans = annotation.spans
    text = h5py.string_dtype("utf-8")
    with h5py.File(episode, "r+") as handle:
        if handle.attrs.get("schema") not in ("excap.episode", b"excap.episode"):
            raise EpisodeError(f"{episode}: not an excap episode")
        if GROUP in handle:
            del handle[GROUP]
        group = handle.create_group(GROUP)
        group.create_dataset("t_start_ns", data=np.array([s.t_start_ns for s in spans], dtype=np.int64))
        group.create_dataset("t_end_ns", data=np.array([s.t_end_ns for s in spans], dtype=np.int64))
        group.create_dataset("label", data=np.array([s.label for s in spans], dtype=object), dtype=text)
        group.create_dataset("source", data=np.array([s.source for s in spans], dtype=object), dtype=text)
        group.attrs.update({"author": annotation.author, "created_at": annotation.created_at,
                            "status": annotation.status, "revision": np.int64(annotation.revision)})
        if annotation.reason:
            group.attrs["reason"] = annotation.reason
        handle.flush()
    fd = os.open(episode, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_sidecar(episode: str | Path) -> None:
    """Step 3."""
    sidecar_path(episode).unlink(missing_ok=True)
    _fsync_dir(Path(episode).parent)


def recover_annotation(episode: str | Path) -> bool:
    """Apply a sidecar left by an interrupted write, then remove it. True if there was one."""
    sidecar = sidecar_path(episode)
    sidecar.with_name(sidecar.name + ".tmp").unlink(missing_ok=True)  # step 1 never completed: nothing to apply
    if not sidecar.exists():
        return False
    try:
        annotation = Annotation.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise EpisodeError(f"{sidecar}: unreadable annotation sidecar ({exc}); fix or remove it") from exc
    apply_to_episode(episode, annotation)
    remove_sidecar(episode)
    return True


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_annotation(episode: str | Path, recover: bool = True) -> Annotation | None:
    """The episode's stored annotation (after applying a leftover sidecar unless `recover` is False)."""
    if recover:
        recover_annotation(episode)
    with h5py.File(episode, "r") as handle:
        group = handle.get(GROUP)
        if not isinstance(group, h5py.Group):
            return None
        labels = group["label"].asstr()[()] if len(group["label"]) else []
        sources = group["source"].asstr()[()] if len(group["source"]) else []
        spans = [AnnotationSpan(int(a), int(b), str(c), str(d)) for a, b, c, d in
                 zip(group["t_start_ns"][()], group["t_end_ns"][()], labels, sources, strict=True)]
        attrs = group.attrs
        return Annotation(spans, _text(attrs.get("author", "")), _text(attrs.get("status", "")),
                          int(attrs.get("revision", 0)), _text(attrs.get("created_at", "")),
                          _text(attrs.get("reason", "")))


def annotation_status(episode: str | Path) -> str:
    """'accepted', 'rejected', or '' when the episode has no annotation (attributes only)."""
    recover_annotation(episode)
    with h5py.File(episode, "r") as handle:
        group = handle.get(GROUP)
        return _text(group.attrs.get("status", "")) if isinstance(group, h5py.Group) else ""


def store_annotation(episode: str | Path, spans: list[AnnotationSpan], author: str, status: str,
                     reason: str = "") -> Annotation:
    """Store spans as the episode's annotation (replacing any earlier one, whose revision it follows)."""
    if status not in STATUSES:
        raise EpisodeError(f"annotation status must be one of {', '.join(STATUSES)}, not {status!r}")
    previous = read_annotation(episode)
    annotation = Annotation(list(spans), author, status, (previous.revision if previous else 0) + 1, reason=reason)
    write_sidecar(episode, annotation)
    apply_to_episode(episode, annotation)
    remove_sidecar(episode)
    return annotation

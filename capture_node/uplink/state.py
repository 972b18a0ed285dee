"""The uplink's local state: one JSON file per episode and one for the uploader, under DIR/.excap/uplink/.

Every write is atomic (temporary file, fsync, rename), so a killed uploader leaves either the old or the new
state, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = Path(".excap") / "uplink"
UPLOADER_FILE = "uploader.json"


def _check_types(record: object, types: dict[str, type]) -> None:
    for name, kind in types.items():
        value = getattr(record, name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} must be {kind.__name__}")


@dataclass
class PartRecord:
    etag: str
    sha256: str
    size: int


@dataclass
class EpisodeState:
    """What is known about one episode's upload."""

    relative: str  # POSIX path inside DIR
    size: int
    mtime_ns: int
    sha256: str = ""
    bucket: str = ""
    key: str = ""
    upload_id: str = ""
    part_size: int = 0
    parts: dict[int, PartRecord] = field(default_factory=dict)
    verified_at: float | None = None  # the remote copy matched size and SHA-256 at this wall time
    deleted_at: float | None = None  # the local file was deleted by the retention policy
    problem: str = ""  # why this episode is not uploaded (invalid file), empty when it may go

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parts"] = {str(number): asdict(part) for number, part in sorted(self.parts.items())}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeState:
        """The state in `data`; TypeError or ValueError when it is not one (a damaged or foreign file)."""
        data = dict(data)
        raw_parts = data.pop("parts", {})
        if not isinstance(raw_parts, dict) or not all(isinstance(part, dict) for part in raw_parts.values()):
            raise TypeError("parts must map part numbers to records")
        parts = {int(number): PartRecord(**part) for number, part in raw_parts.items()}
        state = cls(**data, parts=parts)
        _check_types(state, {"relative": str, "size": int, "mtime_ns": int, "sha256": str, "bucket": str, "key": str,
                             "upload_id": str, "part_size": int, "problem": str})
        for name in ("verified_at", "deleted_at"):
            value = getattr(state, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"{name} must be a time")
        for part in parts.values():
            _check_types(part, {"etag": str, "sha256": str, "size": int})
        return state

    def matches(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns


@dataclass
class UploaderState:
    """The uploader's latest pass and latest error, in plain words."""

    last_pass_at: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def state_path(root: Path, relative: str) -> Path:
    """One file per episode, named by a readable stem and a hash of its relative path (unique, flat)."""
    digest = hashlib.sha256(relative.encode()).hexdigest()[:12]
    stem = Path(relative).stem[:80]
    return state_dir(root) / f"{stem}.{digest}.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or damaged (a damaged state is started afresh)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_episode(root: Path, relative: str) -> EpisodeState | None:
    data = read_json(state_path(root, relative))
    if data is None:
        return None
    try:
        state = EpisodeState.from_json(data)
    except (TypeError, ValueError):
        return None
    return state if state.relative == relative else None


def save_episode(root: Path, state: EpisodeState) -> None:
    write_json(state_path(root, state.relative), state.to_json())


def episode_states(root: Path) -> list[EpisodeState]:
    folder = state_dir(root)
    states = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name == UPLOADER_FILE:
            continue
        data = read_json(path)
        try:
            states.append(EpisodeState.from_json(data)) if data else None
        except (TypeError, ValueError):
            continue
    return states


def load_uploader(root: Path) -> UploaderState:
    data = read_json(state_dir(root) / UPLOADER_FILE) or {}
    try:
        state = UploaderState(**data)
        _check_types(state, {"last_error": str, "target": str})
        for value in (state.last_pass_at, state.last_error_at):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError("times must be numbers")
    except TypeError:
        return UploaderState()
    return state


def save_uploader(root: Path, state: UploaderState) -> None:
    write_json(state_dir(root) / UPLOADER_FILE, state.to_json())


def record_error(root: Path, message: str) -> None:
    state = load_uploader(root)
    state.last_error, state.last_error_at = message, time.time()
    save_uploader(root, state)

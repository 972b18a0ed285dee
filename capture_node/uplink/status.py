"""The uplink's queue in a few numbers, from the state files alone (cheap, no network, no boto3).

Used by `excap upload DIR --status` and by the station page (`uplink` in the station status).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from excap.uplink.queue import candidates
from excap.uplink.state import episode_states, load_uploader, state_dir


@dataclass
class UplinkSummary:
    active: bool  # DIR has uplink state (an uploader ran here)
    pending_episodes: int
    pending_bytes: int
    oldest_pending_age_s: float | None
    uploading: str  # the episode with an upload in progress ("" if none)
    uploaded: int  # verified remote copies (still local or deleted by retention)
    invalid: int  # files that are not valid episodes and are never uploaded
    last_pass_at: float | None
    last_error: str
    last_error_at: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line in plain words, e.g. for a terminal or the station page."""
        if not self.active:
            return "uplink: not running here"
        if self.pending_episodes:
            age = self.oldest_pending_age_s or 0.0
            text = (f"uplink: {self.pending_episodes} episodes pending ({self.pending_bytes / 1e6:.1f} MB, oldest "
                    f"{_age(age)})")
        else:
            text = "uplink: all episodes uploaded"
        text += f", {self.uploaded} uploaded"
        if self.invalid:
            text += f", {self.invalid} invalid (not uploaded)"
        if self.last_error:
            text += f"; last error: {self.last_error}"
        return text


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def summary(root: Path, now: float | None = None) -> UplinkSummary:
    root = Path(root)
    now = time.time() if now is None else now
    states = {state.relative: state for state in episode_states(root)}
    uploader = load_uploader(root)
    pending, pending_bytes, oldest = 0, 0, None
    invalid = 0
    for candidate in candidates(root):
        state = states.get(candidate.relative)
        fresh = state is not None and state.matches(candidate.size, candidate.mtime_ns)
        if fresh and state is not None and state.problem:
            invalid += 1
        elif not (fresh and state is not None and state.verified_at is not None):
            pending += 1
            pending_bytes += candidate.size
            oldest = candidate.mtime if oldest is None else min(oldest, candidate.mtime)
    uploading = next((s.relative for s in states.values() if s.upload_id and s.verified_at is None), "")
    return UplinkSummary(active=state_dir(root).is_dir(), pending_episodes=pending, pending_bytes=pending_bytes,
                         oldest_pending_age_s=None if oldest is None else max(0.0, now - oldest), uploading=uploading,
                         uploaded=sum(1 for s in states.values() if s.verified_at is not None), invalid=invalid,
                         last_pass_at=uploader.last_pass_at, last_error=uploader.last_error,
                         last_error_at=uploader.last_error_at)


class CachedSummary:
    """`summary(root)` recomputed at most every `max_age_s` (the station page asks several times a second)."""

    def __init__(self, root: Path, max_age_s: float = 1.0) -> None:
        self.root, self.max_age_s = Path(root), max_age_s
        self._value: dict[str, Any] | None = None
        self._at = 0.0

    def __call__(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._value is None or now - self._at >= self.max_age_s:
            try:
                state = summary(self.root)
                self._value = {**state.to_json(), "line": state.line()}
            except OSError as exc:  # the folder is unreadable right now: say so, never break the status
                self._value = {"active": False, "line": f"uplink: status unavailable ({exc})"}
            self._at = now
        return self._value

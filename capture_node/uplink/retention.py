"""Deleting local episodes after upload: only by an explicit policy, only once the remote copy is verified.

A policy deletes nothing by default. `delete_after_upload` deletes each episode once verified; `keep_days`
deletes verified episodes older than N days; `keep_free_gb` deletes verified episodes, oldest first, until the
folder's disk has G GB free. Right before a file is deleted its remote copy is checked again (HEAD: size and
SHA-256), and the file must still be the one that was uploaded (same size and modification time).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from excap.uplink.state import EpisodeState, save_episode

DAY_S = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    delete_after_upload: bool = False
    keep_days: float | None = None
    keep_free_gb: float | None = None

    @property
    def active(self) -> bool:
        return self.delete_after_upload or self.keep_days is not None or self.keep_free_gb is not None


def _deletable(root: Path, state: EpisodeState) -> Path | None:
    path = root / state.relative
    if state.verified_at is None or state.deleted_at is not None or state.problem:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return path if state.matches(info.st_size, info.st_mtime_ns) else None


def apply_retention(root: Path, states: list[EpisodeState], policy: RetentionPolicy,
                    remote_matches: Callable[[EpisodeState], bool], now: float | None = None,
                    free_bytes: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> list[str]:
    """Deletes what the policy allows; returns the relative paths deleted."""
    if not policy.active:
        return []
    now = time.time() if now is None else now
    ready = sorted(((state, path) for state in states if (path := _deletable(root, state)) is not None),
                   key=lambda item: item[1].stat().st_mtime)
    deleted: list[str] = []

    def delete(state: EpisodeState, path: Path) -> None:
        if not remote_matches(state):
            state.verified_at = None  # the remote copy is gone or differs: upload it again
            save_episode(root, state)
            return
        path.unlink()
        state.deleted_at = time.time()
        save_episode(root, state)
        deleted.append(state.relative)

    for state, path in ready:
        old = policy.keep_days is not None and now - path.stat().st_mtime > policy.keep_days * DAY_S
        if policy.delete_after_upload or old:
            delete(state, path)
    if policy.keep_free_gb is not None:
        for state, path in ready:
            if free_bytes(root) >= policy.keep_free_gb * 1e9:
                break
            if path.exists():
                delete(state, path)
    return deleted

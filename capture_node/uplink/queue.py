"""Which local files are episodes ready to upload: final `.h5` files, never what is being recorded.

Hidden folders (`.recording/` of the recorder, `.excap/`), hidden or temporary files (`*.part`, `*.tmp`,
journals) and anything that is not a regular `.h5` file are skipped; a candidate is validated once
(`excap validate`'s checks) before its first upload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

EPISODE_SUFFIX = ".h5"


@dataclass(frozen=True)
class Candidate:
    relative: str
    path: Path
    size: int
    mtime_ns: int
    mtime: float


def is_candidate_name(relative: str) -> bool:
    parts = relative.split("/")
    return bool(parts) and not any(p.startswith(".") for p in parts) and relative.endswith(EPISODE_SUFFIX)


def candidates(root: Path) -> Iterator[Candidate]:
    """The final `.h5` files under `root` (sorted, oldest folders first by name), symlinks not followed."""
    root = Path(root)
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(current) / name
            relative = path.relative_to(root).as_posix()
            if not is_candidate_name(relative):
                continue
            try:
                info = path.lstat()
            except OSError:
                continue
            if path.is_symlink() or not path.is_file():
                continue
            yield Candidate(relative, path, info.st_size, info.st_mtime_ns, info.st_mtime)


def validation_problem(path: Path) -> str:
    """The first problem `excap validate` finds in the file, or "" for a valid episode."""
    from excap.episode.validation import validate_episode

    problems = validate_episode(path)
    return problems[0] if problems else ""

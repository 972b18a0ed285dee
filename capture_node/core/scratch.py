"""Scratch folders of worker processes that a killed worker does not leave behind for good.

A worker (a Ray task, a pool process) that is killed (SIGKILL, out of memory, a lost node) cannot remove its
temporary folder, and on a long-running cluster node such folders (downloaded episodes, exported parts) fill the
disk. `scratch_folder(prefix)` names its folder after the process (`<prefix><pid>-<random>`), and before making
one it removes the folders of that prefix whose process no longer runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_abandoned(prefix: str, parent: Path | None = None) -> list[Path]:
    """Remove the scratch folders of `prefix` under `parent` (the temporary folder) whose process is gone."""
    removed = []
    folder = Path(parent or tempfile.gettempdir())
    for path in folder.glob(f"{prefix}*-*"):
        owner = path.name[len(prefix):].split("-", 1)[0]
        if not owner.isdigit() or not path.is_dir() or _running(int(owner)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def scratch_folder(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A new folder `<prefix><pid>-<random>` for the block, removed after it (abandoned ones removed first)."""
    remove_abandoned(prefix, parent)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

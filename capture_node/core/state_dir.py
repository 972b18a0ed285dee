"""The private state folder of an episode folder, DIR/.excap: mode 0700, and its files mode 0600.

It holds the catalogue (raw operator ids), partner token hashes, the pseudonym key, the operator registry (names),
the access logs and the partners' episode copies. Whoever opens one of them through these helpers also repairs
the modes of a folder or file created earlier with looser ones.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

STATE_DIR = ".excap"
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """`path` as a folder only its owner can enter (created with its parents if missing)."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def state_dir(root: str | Path) -> Path:
    """DIR/.excap, private."""
    return private_dir(Path(root) / STATE_DIR)


def private_file(path: str | Path) -> Path:
    """Make an existing file readable and writable by its owner only; a missing file is left alone."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return path
    if mode != FILE_MODE:
        os.chmod(path, FILE_MODE)
    return path


def create_private(path: str | Path) -> Path:
    """An empty file (or the existing one) with mode 0600, in a private parent folder."""
    path = Path(path)
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    return private_file(path)


def private_opener(path: str, flags: int) -> int:
    """`opener` for open(): new files get mode 0600."""
    return os.open(path, flags, FILE_MODE)

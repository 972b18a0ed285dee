"""The open file descriptors of this process, read from /proc (Linux)."""

import os
from pathlib import Path


def descriptors_to(path: Path) -> list[int]:
    """This process's descriptors open on `path`, also after the file was deleted."""
    names = {str(path), f"{path} (deleted)"}
    found = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:  # closed while listing (the listing's own descriptor, another thread's)
            continue
        if target in names:
            found.append(int(entry.name))
    return found

"""Publishing a finished file: durable first, then under its final name in one step, the rename itself durable.

Episodes (the recorder, recovery) and converted files (CAN logs, ROS 2 bags) are published this way, so a reader
never sees half a file under a final name, and a crash leaves either the whole file or none.
"""

import os
from pathlib import Path

from excap.core.errors import EpisodeError


def publish_atomically(temporary: Path, final: Path) -> None:
    """Make a finished file durable, then move it to its final name in one step."""
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if final.exists():
        raise EpisodeError(f"{final}: episode already exists")
    os.replace(temporary, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

"""Free disk space and the reserve a recording leaves untouched.

HDF5 cannot be trusted to fail cleanly when a write hits a full disk, so the recorder never lets it
get there: it stops while `reserve` bytes are still free, enough to finish the episode it has (the
last rows, the final attributes and the chunks being filled) and to leave the system usable.
"""

import math
import os
from pathlib import Path

from excap.core.errors import ConfigError

MB = 1_000_000
#: Default bytes left free by a recording: finishing an episode at full load (two 640x480 cameras,
#: ~3 MB/s) writes at most a few MB; the rest is margin for the rest of the system.
DEFAULT_RESERVE_BYTES = 64 * MB
#: The smallest reserve: HDF5's own writes (chunk space, heap, metadata) beyond the rows' bytes.
MIN_RESERVE_MB = 4
#: Environment variable that sets the reserve in MB (10^6 bytes), for every recording a process makes.
RESERVE_ENV = "EXCAP_DISK_RESERVE_MB"


def reserve_bytes() -> int:
    """The disk reserve: `EXCAP_DISK_RESERVE_MB` if set, else the default."""
    text = os.environ.get(RESERVE_ENV, "").strip()
    if not text:
        return DEFAULT_RESERVE_BYTES
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not MIN_RESERVE_MB <= value <= 1e7:
        raise ConfigError(f"{RESERVE_ENV}={text!r}: must be a number of MB from {MIN_RESERVE_MB} to 10000000")
    return int(value * MB)


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged process may still write in the file system holding `folder`."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def describe(size: int) -> str:
    """`12.3 MB` for messages."""
    return f"{size / 1e6:.1f} MB"

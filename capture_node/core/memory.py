"""Hand the heap memory freed by a finished episode (or a recovery) back to the operating system.

A station records one episode after another in one process. Each episode's threads, HDF5 caches and frame buffers
are freed when it ends, but glibc keeps freed memory in its per-thread arenas, so the process's resident size
steps up with every episode although nothing is still in use; so does a recovery of crashed episodes at a
station's start. `release_free_memory` asks glibc to return what is free (`malloc_trim`); on other C libraries it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free memory to the system; True when the C library gave some back."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False

"""A folder only this test's driver thread sees: `driver_only_folder(path)` moves the calling thread into a
mount namespace of its own (mounts private) and mounts an empty tmpfs on `path` there; every other process (the
Ray workers, started by their nodes) still sees the folder underneath. Leaving the block returns the thread to
its first namespace (the tmpfs and its files go away with the namespace). Needs root (CAP_SYS_ADMIN).

This stands in for cluster machines that share no filesystem with the driver: whatever a worker writes under
`path` lands in the folder underneath, which the driver does not see, and what the driver writes there the
workers do not see.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


@contextmanager
def driver_only_folder(path: Path) -> Iterator[Path]:
    libc = ctypes.CDLL(None, use_errno=True)
    path.mkdir(parents=True, exist_ok=True)
    first = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY)
    try:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
            _check(libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, None), f"mount tmpfs on {path}")
            yield path
        finally:
            _check(libc.setns(first, CLONE_NEWNS), "return to the first mount namespace")
    finally:
        os.close(first)

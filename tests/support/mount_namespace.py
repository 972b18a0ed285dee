"""A folder only one thread of this test process sees: `with_driver_only_folder(path, job)` runs `job(path)` on a
new thread that first moves into a mount namespace of its own (mounts private) and mounts an empty tmpfs on
`path` there; every other process (the Ray workers, started by their nodes) and thread still sees the folder
underneath. The namespace, the tmpfs and its files go away with the thread (and the threads it started). Needs
root (CAP_SYS_ADMIN).

This stands in for cluster machines that share no filesystem with the driver: whatever a worker writes under
`path` lands in the folder underneath, which the driver does not see, and what the driver writes there the
workers do not see.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
JOIN_TIMEOUT_S = 300.0

T = TypeVar("T")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def with_driver_only_folder(path: Path, job: Callable[[Path], T]) -> T:
    """`job(path)`'s result (or its exception), run where `path` is an empty tmpfs seen by no other process."""
    path.mkdir(parents=True, exist_ok=True)
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
            _check(libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, None), f"mount tmpfs on {path}")
            outcome.append(job(path))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="driver-only-folder")
    thread.start()
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f"the job on {path} did not end within {JOIN_TIMEOUT_S:.0f} s"
    if failure:
        raise failure[0]
    return outcome[0]

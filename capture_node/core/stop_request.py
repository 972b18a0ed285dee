"""Ctrl-C and SIGTERM as a request to stop: a flag that the command's loop reads, never an exception.

Long-running commands (`excap record`, `excap station`, `excap node`) install it first, before they load their
libraries: a KeyboardInterrupt raised while a library is being imported can be swallowed by that library (some
catch everything around optional imports), and the command would go on recording. A flag cannot be lost, and a
second signal cannot interrupt the finalizing of an episode.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """`requested` is set by SIGINT or SIGTERM (`signal_name` says which) once `install()` has run."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> StopRequest:
        """Take SIGINT and SIGTERM (only the main thread can; elsewhere the flag is set by `request()` alone)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._handle)
        return self

    def request(self, signal_name: str | None = None) -> None:
        self.signal_name = signal_name
        self.requested.set()

    def _handle(self, signum: int, _frame: object) -> None:
        self.request(signal.Signals(signum).name)

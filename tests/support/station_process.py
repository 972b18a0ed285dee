"""`excap station` as a separate process: started as a user would, its page's URL read from its stderr, stopped
with SIGTERM."""

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.commands import excap_command
from tests.support.waiting import wait_for

_URL = re.compile(r"^station page[^:]*: (https?://\S+)")


@dataclass
class StationProcess:
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def url(self) -> str | None:
        for line in self.lines:
            found = _URL.match(line)
            if found:
                return found.group(1)
        return None


def _read(process: StationProcess) -> None:
    assert process.process.stderr is not None
    for line in process.process.stderr:
        process.lines.append(line.rstrip("\n"))


@contextmanager
def station_process(*args: str, timeout: float = 60.0) -> Iterator[StationProcess]:
    """A running `excap station ARGS...` whose page is up (its URL known); stopped with SIGTERM afterwards."""
    popen = subprocess.Popen(excap_command("station", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    running = StationProcess(popen)
    reader = threading.Thread(target=_read, args=(running,), daemon=True)
    reader.start()
    try:
        wait_for(lambda: running.url() or popen.poll() is not None, timeout=timeout, message="the station's URL")
        assert running.url(), running.lines
        yield running
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        reader.join(timeout=10)

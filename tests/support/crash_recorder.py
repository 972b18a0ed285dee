"""A light recording process to kill with SIGKILL at any phase of a recording's life.

Run as `python -m tests.support.crash_recorder`: the process imports the recorder once, then forks one
recording process per request read from stdin (a JSON line), so a trial costs a fork, not an interpreter
start. Each recording is the real `Recorder` with a 200 Hz control stream, a 100 Hz joystick stream and a
30 fps camera stream of small JPEG frames, all with `t_ns` taken when the row is made.

Each forked recording writes lines to stdout (unbuffered): `pid <pid>`, `phase <name> <t_ns>` as it
passes each phase (`starting` just before `Recorder.start()`, then every `excap.record.recorder.PHASES`
name), and it stops by itself after `duration_s`. With `pause_at`, it blocks forever on reaching that
phase, so the test can kill it exactly there. The server reaps the recording process only when the test
sends `reap` (so its pid cannot be reused by another process before the test's kill), then answers
`exit <pid> <wait status>`.

Request: {"out": DIR, "duration_s": S, "pause_at": PHASE or null, "label": "success"|"failure"|null}
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from excap.core.clock import now_ns
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, control_spec, joystick_spec
from excap.record.recorder import Recorder, RecorderConfig
from tests.support.jpeg import jpeg_frame

FUNCTIONS = ["boom", "arm", "bucket", "swing"]

#: kill -9 loses at most the journal interval (the README's promise, not read from the code under test)...
JOURNAL_INTERVAL_S = 0.25
#: ...plus the journal thread's wake-up and drain under load on 2 busy cores and one producer period.
SCHEDULING_MARGIN_S = 0.10
LOSS_BOUND_S = JOURNAL_INTERVAL_S + SCHEDULING_MARGIN_S


def _say(text: str) -> None:
    os.write(1, f"{text}\n".encode())


def _produce(recorder: Recorder, stop: threading.Event) -> None:
    control = recorder.add_stream(control_spec(FUNCTIONS))
    joystick = recorder.add_stream(joystick_spec("operator", ["lx", "ly", "rx", "ry"], ["enable"], "sim", "test"))
    camera = recorder.add_stream(camera_spec("side", 160, 120, 30.0, "test"))
    frame = jpeg_frame(0, 32, 24)
    tick = 0
    start = time.monotonic()
    while not stop.is_set():
        t_ns = now_ns()
        value = (tick % 200) / 200.0
        control.put((t_ns, [value, -value, 0.0, 0.5], True))
        if tick % 2 == 0:
            joystick.put((t_ns, t_ns, [value, 0.0, 0.0, -value], [1]))
        if tick % 7 == 0:
            camera.put((t_ns, t_ns, frame))
        tick += 1
        delay = start + tick * 0.005 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def record(request: dict) -> None:
    pause_at = request.get("pause_at")

    def on_phase(name: str) -> None:
        _say(f"phase {name} {now_ns()}")
        if name == pause_at:
            threading.Event().wait()

    metadata = EpisodeMetadata(machine_kind="excavator", machine_model="test", machine_id="crash-test",
                               control_pattern="iso", profile="excavator_20t", operator_id="op-1")
    recorder = Recorder(RecorderConfig(Path(request["out"]), on_phase=on_phase), metadata)
    stop = threading.Event()
    on_phase("starting")
    recorder.start()
    producer = threading.Thread(target=_produce, args=(recorder, stop), daemon=True)
    producer.start()
    if request.get("label"):
        recorder.set_outcome(request["label"])
    time.sleep(request.get("duration_s", 1.0))
    stop.set()
    producer.join()
    recorder.stop()


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _say(f"pid {os.getpid()}")
                record(request)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        sys.stdin.readline()  # "reap": the test is done with this pid
        _, status = os.waitpid(pid, 0)
        _say(f"exit {pid} {status}")


# -- the test's side ------------------------------------------------------------------------------


@dataclass
class Trial:
    pid: int
    phases: dict[str, int]  # phase name -> t_ns when the recording reached it
    killed_at_ns: int = 0
    exit_status: int | None = None


class CrashRecorderServer:
    """The test's handle on a running `crash_recorder` server process."""

    def __init__(self, repo: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.crash_recorder"], cwd=repo,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def _next(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no word from the crash recorder in {timeout} s") from None

    def begin(self, out: Path, duration_s: float = 1.0, pause_at: str | None = None,
              label: str | None = None) -> Trial:
        assert self.process.stdin is not None
        request = {"out": str(out), "duration_s": duration_s, "pause_at": pause_at, "label": label}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        words = self._next(30).split()
        assert words[0] == "pid", words
        return Trial(int(words[1]), {})

    def wait_phase(self, trial: Trial, phase: str, timeout: float = 30.0) -> int:
        """Read the recording's lines until it reports `phase`; returns its t_ns."""
        while phase not in trial.phases:
            words = self._next(timeout).split()
            if words[0] == "phase":
                trial.phases[words[1]] = int(words[2])
            elif words[0] == "exit":
                trial.exit_status = int(words[2])
                raise AssertionError(f"recording ended (status {trial.exit_status}) before phase {phase}")
            if "journal_removed" in trial.phases and phase not in trial.phases:
                raise AssertionError(f"recording finished before phase {phase}")
        return trial.phases[phase]

    def kill(self, trial: Trial) -> None:
        """SIGKILL the recording process now, and wait until the server has reaped it."""
        trial.killed_at_ns = time.monotonic_ns()
        os.kill(trial.pid, signal.SIGKILL)  # not yet reaped: at worst a zombie, never another process
        self.finish(trial)

    def finish(self, trial: Trial, timeout: float = 30.0) -> int:
        """Let the server reap the recording process; returns its wait status."""
        assert self.process.stdin is not None
        self.process.stdin.write("reap\n")
        self.process.stdin.flush()
        while trial.exit_status is None:
            words = self._next(timeout).split()
            if words[0] == "phase":
                trial.phases[words[1]] = int(words[2])
            elif words[0] == "exit":
                trial.exit_status = int(words[2])
        return trial.exit_status

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    serve()

"""Path figures of the capture benchmark: the CAN path per frame and the joystick-to-CAN command latency.

`can_path`: a python-can `virtual` bus pre-filled with DBC frames (`excap.bench.can_load`) read by the capture's
own receive -> decode -> store code (`CanCapture.on_frame` into a running `Recorder`), one frame at a time on one
thread; reported: wall time per frame of that loop, and process CPU per frame from the first receive to the finished
episode (the journal and HDF5 writers included).

`command_latency`: the station's `CommandLink` sends cab-joystick frames on a virtual bus at its rate; a machine-side
receiver decodes them. The stick moves to a new position at random moments; the latency is from the move
(`set_input`) to the first frame on the bus that carries it.
"""

import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import can
import numpy as np

from excap.bench.can_load import dbc_frames
from excap.bench.measure import cpu_s
from excap.core.clock import now_ns
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import DEFAULT_PROFILE, load_profile
from excap.episode.metadata import EpisodeMetadata
from excap.record.can_capture import CanCapture
from excap.record.recorder import Recorder, RecorderConfig


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    return {"p50": round(float(np.percentile(array, 50)), 3), "p99": round(float(np.percentile(array, 99)), 3),
            "max": round(float(array.max()), 3)}


def can_path(frames: int = 20_000, out_dir: Path | None = None) -> dict[str, Any]:
    profile = load_profile(DEFAULT_PROFILE)
    channel = f"excap-can-path-{uuid.uuid4().hex[:8]}"
    sender = can.Bus(interface="virtual", channel=channel)
    receiver = can.Bus(interface="virtual", channel=channel)
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        metadata = EpisodeMetadata(machine_kind=profile.kind, machine_model=profile.model, machine_id="bench",
                                   control_pattern=profile.default_pattern, profile=profile.name)
        recorder = Recorder(RecorderConfig(Path(work)), metadata)
        capture = CanCapture(recorder, "can0", receiver, FrameDecoder(profile.dbc_paths), "virtual")
        recorder.start()
        try:
            built = dbc_frames(profile.dbc_paths, count=frames)
            for message in built:
                sender.send(message)
            cpu0 = cpu_s()
            start = time.perf_counter()
            received = 0
            while received < frames:
                msg = receiver.recv(1.0)
                if msg is None:
                    break
                capture.on_frame(msg)
                received += 1
            loop_s = time.perf_counter() - start
        finally:
            path = recorder.stop()
        cpu_total = cpu_s() - cpu0
        dropped = sum(s.dropped for s in recorder.status())
        size = path.stat().st_size
    sender.shutdown()
    receiver.shutdown()
    return {"frames": received, "decoded_messages": len(capture._decoded), "dropped": dropped,
            "loop_us_per_frame": round(1e6 * loop_s / max(1, received), 2),
            "process_cpu_us_per_frame": round(1e6 * cpu_total / max(1, received), 2),
            "episode_bytes": size}


class _Machine(can.Listener):
    def __init__(self, receiver: CabJoystickReceiver) -> None:
        self.receiver = receiver
        self.frames: list[tuple[int, tuple[float, ...]]] = []
        self.arrived = threading.Condition()

    def on_message_received(self, msg: can.Message) -> None:
        t_ns = now_ns()
        if self.receiver.feed(msg, t_ns):
            values, _enabled, _ = self.receiver.command()
            with self.arrived:
                self.frames.append((t_ns, tuple(values)))
                self.arrived.notify_all()

    def first_after(self, t_ns: int, boom: float, timeout_s: float = 2.0) -> int:
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while True:
                for arrived, values in reversed(self.frames):
                    if arrived < t_ns:
                        break
                    if abs(values[0] - boom) < 0.02:
                        return min(a for a, v in self.frames if a >= t_ns and abs(v[0] - boom) < 0.02)
                if not self.arrived.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("no command frame with the new stick position")


def command_latency(moves: int = 200, rate_hz: float | None = None, seed: int = 0,
                    send_on_change: bool = False) -> dict[str, Any]:
    profile = load_profile(DEFAULT_PROFILE)
    assert profile.cab_joysticks is not None
    rate = rate_hz or profile.cab_joysticks.rate_hz
    mapper = CommandMapper(profile)
    channel = f"excap-latency-{uuid.uuid4().hex[:8]}"
    station = can.Bus(interface="virtual", channel=channel)
    machine_bus = can.Bus(interface="virtual", channel=channel)
    side = _Machine(CabJoystickReceiver(profile.cab_joysticks, profile.functions))
    notifier = can.Notifier(machine_bus, [side], timeout=0.01)
    link = CommandLink(CommandLinkConfig(rate_hz=rate, stale_timeout_s=0.1, send_on_change=send_on_change), mapper,
                       profile.cab_joysticks,
                       send=station.send)
    enable = tuple(1 if b == profile.enable_button else 0 for b in profile.buttons)
    rng = random.Random(seed)
    stick = [tuple(mapper.sticks_for([0.0] * len(profile.functions)))]
    stop = threading.Event()

    def joystick() -> None:  # a periodic joystick at 200 Hz repeating the current position
        while not stop.wait(0.005):
            link.set_input(OperatorInput(stick[0], enable, now_ns()))

    feeder = threading.Thread(target=joystick, daemon=True)
    latencies: list[float] = []
    link.start()
    feeder.start()
    try:
        time.sleep(0.2)
        for index in range(moves):
            boom = round(0.2 + 0.6 * (index % 2), 2)
            axes = tuple(mapper.sticks_for([boom] + [0.0] * (len(profile.functions) - 1)))
            time.sleep(rng.uniform(0.02, 0.06))
            t0 = now_ns()
            stick[0] = axes
            link.set_input(OperatorInput(axes, enable, t0))
            latencies.append((side.first_after(t0, boom) - t0) / 1e6)
    finally:
        stop.set()
        feeder.join()
        link.stop()
        notifier.stop()
        station.shutdown()
        machine_bus.shutdown()
    return {"moves": len(latencies), "command_rate_hz": rate, "send_on_change": send_on_change,
            "latency_ms": _percentiles(latencies)}

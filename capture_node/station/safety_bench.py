"""`excap bench safety`: how fast the command path goes neutral when operator input fails.

A real command link sends BJM1 frames on a python-can virtual bus at its configured rate; a
machine-side listener decodes them. Losses are injected over and over — input going stale,
a device reported lost (unplug), an axis out of range — and each time the delay is measured
from the moment the fault exists (last input + timeout for stale input) to the first neutral
frame the machine receives.
"""

import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import can
import numpy as np

from excap.core.clock import now_ns
from excap.core.periodic import Late, Periodic
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import DEFAULT_PROFILE, load_profile

KINDS = ("stale", "unplug", "out_of_range")


@dataclass
class _Received:
    t_ns: int
    enabled: bool


class _MachineSide(can.Listener):
    def __init__(self, receiver: CabJoystickReceiver) -> None:
        self.receiver = receiver
        self.frames: list[_Received] = []
        self.arrived = threading.Condition()

    def on_message_received(self, msg: can.Message) -> None:
        t_ns = now_ns()
        if self.receiver.feed(msg, t_ns):
            _, enabled, _ = self.receiver.command()
            with self.arrived:
                self.frames.append(_Received(t_ns, enabled))
                self.arrived.notify_all()

    def wait_for(self, predicate: Callable[..., bool], timeout_s: float = 5.0) -> _Received:
        deadline = now_ns() + int(timeout_s * 1e9)
        with self.arrived:
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                remaining = (deadline - now_ns()) / 1e9
                if remaining <= 0:
                    raise TimeoutError("no matching command frame on the bus")
                self.arrived.wait(remaining)


def run_safety_bench(losses: int = 60, rate_hz: float = 50.0, timeout_s: float = 0.1,
                     profile_name: str = DEFAULT_PROFILE) -> dict[str, object]:
    profile = load_profile(profile_name)
    if profile.cab_joysticks is None:
        raise ValueError(f"profile {profile_name} has no cab_joysticks layout")
    mapper = CommandMapper(profile)
    config = CommandLinkConfig(rate_hz=rate_hz, stale_timeout_s=timeout_s)  # checked before any bus is opened
    channel = f"excap-safety-{uuid.uuid4().hex}"
    station = can.Bus(interface="virtual", channel=channel)
    machine = can.Bus(interface="virtual", channel=channel)
    side = _MachineSide(CabJoystickReceiver(profile.cab_joysticks, profile.functions))
    notifier = can.Notifier(machine, [side], timeout=0.02)
    link = CommandLink(config, mapper, profile.cab_joysticks, send=station.send)
    enable = tuple(1 if b == profile.enable_button else 0 for b in profile.buttons)
    released = tuple(0 for _ in profile.buttons)
    centred = tuple(0.0 for _ in profile.axes)
    deflected = tuple(mapper.sticks_for([0.6] + [0.0] * (len(profile.functions) - 1)))
    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    current: list[OperatorInput | None] = [OperatorInput(centred, released, now_ns())]

    def feed(_index: int) -> None:
        if current[0] is not None:
            sample = current[0]
            link.set_input(OperatorInput(sample.axes, sample.buttons, now_ns()))

    joystick = Periodic("safety-bench-joystick", 0.01, feed, late=Late.SKIP)  # a periodic joystick at 100 Hz
    link.start()
    joystick.start()
    try:
        for index in range(losses):
            kind = KINDS[index % len(KINDS)]
            # Operator re-arms: release, enable from neutral, then move the boom.
            for axes, buttons in ((centred, released), (centred, enable), (deflected, enable)):
                current[0] = OperatorInput(axes, buttons, now_ns())
                mark = now_ns()
                side.wait_for(lambda f, m=mark: f.t_ns > m + int(2e9 / rate_hz))
            side.wait_for(lambda f: f.enabled)
            if kind == "stale":
                current[0] = None
                last = link._input.t_ns if link._input else now_ns()
                onset = last + int(timeout_s * 1e9)
                # The feeder may have set one more input after we read it: take the latest.
                onset = max(onset, (link._input.t_ns if link._input else last) + int(timeout_s * 1e9))
            elif kind == "unplug":
                current[0] = None
                onset = now_ns()
                link.input_lost("bench: device unplugged")
            else:
                bad = (math.nan, *centred[1:])
                onset = now_ns()
                current[0] = OperatorInput(bad, enable, onset)
                link.set_input(OperatorInput(bad, enable, onset))
            neutral = side.wait_for(lambda f, o=onset: f.t_ns >= o and not f.enabled)
            results[kind].append(max(0.0, (neutral.t_ns - onset) / 1e6))
            current[0] = OperatorInput(centred, released, now_ns())
    finally:
        joystick.stop()
        link.stop()
        notifier.stop()
        station.shutdown()
        machine.shutdown()
    every = np.array([v for values in results.values() for v in values])
    return {
        "benchmark": "safety_time_to_neutral",
        "losses": int(every.size),
        "command_period_ms": 1000.0 / rate_hz,
        "stale_timeout_ms": timeout_s * 1000.0,
        "time_to_neutral_ms": {"worst": round(float(every.max()), 2), "p99": round(float(np.percentile(every, 99)), 2),
                               "p50": round(float(np.percentile(every, 50)), 2)},
        "by_kind_worst_ms": {kind: round(max(values), 2) for kind, values in results.items() if values},
        "within_one_period": bool(every.max() <= 1000.0 / rate_hz),
    }

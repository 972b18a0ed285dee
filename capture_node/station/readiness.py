"""Which of a station's devices a session needs before it starts, and which of them are not ready yet.

Required by default: every camera, every CAN bus and every periodic joystick (HID joysticks only report changes,
so their silence says nothing); an entry with `required: false` opts out (`StationConfig.optional_devices`). A
required device is ready once its stream has delivered data (a camera its first encoded picture, a bus its first
frame, a joystick its first sample) and as long as its driver is neither disconnected nor failed.

`DevicesNotReady` is the refusal: one line naming every device and why
(`not ready: camera cab (no picture yet), can can0 (no frames yet)`), the code `devices_not_ready` and the list.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from excap.core.errors import ExcapError
from excap.drivers.base import Health

if TYPE_CHECKING:
    from excap.station.config import StationConfig
    from excap.station.runtime import StationRuntime

NOT_READY_CODE = "devices_not_ready"
STREAM_PREFIX = {"camera": "cameras", "can": "can", "joystick": "joystick"}
NO_DATA = {"camera": "no picture yet", "can": "no frames yet", "joystick": "no samples yet"}
POLL_S = 0.02


@dataclass(frozen=True)
class NotReady:
    """One required device that has not delivered data, or is disconnected or failed."""

    device: str  # camera/cab, can/can0, joystick/left
    reason: str  # no picture yet | no frames yet | no samples yet (, disconnected | failed) | disconnected | failed

    @property
    def text(self) -> str:
        kind, _, name = self.device.partition("/")
        return f"{kind} {name} ({self.reason})"

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class DevicesNotReady(ExcapError):
    """A start refused because required devices are not ready (see the module)."""

    code = NOT_READY_CODE

    def __init__(self, devices: list[NotReady]) -> None:
        super().__init__(not_ready_text(devices))
        self.devices = devices


def not_ready_text(devices: list[NotReady]) -> str:
    return "not ready: " + ", ".join(d.text for d in devices)


def required_devices(config: StationConfig) -> list[str]:
    """The devices a start waits for, as `kind/name`."""
    devices = [f"camera/{c.name}" for c in config.cameras] + [f"can/{c.name}" for c in config.cans]
    devices += [f"joystick/{j.name}" for j in config.joysticks if j.periodic]
    return [d for d in devices if d not in config.optional_devices]


def not_ready(runtime: StationRuntime) -> list[NotReady]:
    """The required devices of an open station that are not ready now, in config order."""
    counts = {tee.spec.path: tee.count for tee in runtime.switch.streams()}
    health = runtime.health()
    missing = []
    for device in required_devices(runtime.config):
        kind, _, name = device.partition("/")
        state = health.get(device)
        trouble = state.value if state in (Health.FAILED, Health.DISCONNECTED) else ""
        if not counts.get(f"{STREAM_PREFIX[kind]}/{name}", 0):
            missing.append(NotReady(device, NO_DATA[kind] + (f", {trouble}" if trouble else "")))
        elif trouble:
            missing.append(NotReady(device, trouble))
    return missing


def wait_ready(runtime: StationRuntime, timeout_s: float, stop: threading.Event | None = None) -> list[NotReady]:
    """Wait up to `timeout_s` (or until `stop` is set) for every required device; returns those still not ready."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    stop = stop or threading.Event()
    while True:
        missing = not_ready(runtime)
        remaining = deadline - time.monotonic()
        if not missing or remaining <= 0 or stop.wait(min(POLL_S, remaining)):
            return missing


def override_detail(devices: list[NotReady], source: str, by: str) -> dict[str, Any]:
    """The detail of a `start_override` event: the devices that were not ready, and who started anyway."""
    return {"devices": [d.device for d in devices], "reasons": [d.reason for d in devices], "source": source,
            "by": by}


__all__ = ["NOT_READY_CODE", "DevicesNotReady", "NotReady", "not_ready", "not_ready_text", "override_detail",
           "required_devices", "wait_ready"]

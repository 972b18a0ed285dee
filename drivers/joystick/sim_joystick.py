"""A simulated joystick without a machine to watch: slow sines on the axes and a walking bit on the buttons.

It is what joystick type `sim` gives where no simulated machine is running (`excap joystick monitor --type sim`);
on a simulated station the same type is the scripted operator (`excap.drivers.sim.scripted_joystick`).
"""

import types
from dataclasses import dataclass

from excap.core.clock import now_ns
from excap.core.errors import ConfigError
from excap.core.periodic import Late, Periodic
from excap.drivers.base import DriverCounters, Health
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.joystick.serial_peer import sweep_state


@dataclass
class SimJoystickConfig:
    name: str = "sim_joystick"
    rate_hz: float = 50.0
    axis_count: int = 4
    button_count: int = 8
    stalls: tuple[tuple[float, float], ...] = ()
    """(at_s, for_s) windows after opening in which the device reports nothing (fault drills)."""


class SimJoystick:
    """Sweeps from a thread at `rate_hz`."""

    def __init__(self, config: SimJoystickConfig, on_sample: SampleCallback) -> None:
        if config.rate_hz <= 0:
            raise ConfigError(f"sim joystick {config.name}: rate_hz must be positive")
        self.config = config
        self._on_sample = on_sample
        self._state = sweep_state(config.axis_count, config.button_count)
        self._worker: Periodic | None = None
        self.counters = DriverCounters()

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(f"axis{i}" for i in range(self.config.axis_count))

    @property
    def health(self) -> Health:
        return Health.OK if self._worker is not None else Health.STOPPED

    def open(self) -> None:
        if self._worker is None:  # a sweep that fell behind reports its current state, never a burst
            self._worker = Periodic(f"sim-joystick-{self.config.name}", 1.0 / self.config.rate_hz, self._tick,
                                    late=Late.SKIP)
            self._worker.start()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __enter__(self) -> "SimJoystick":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        self.close()

    def _tick(self, index: int) -> None:
        period = 1.0 / self.config.rate_hz
        if any(at <= (index + 1) * period < at + length for at, length in self.config.stalls):
            return
        axes, buttons = self._state(index)
        t_ns = now_ns()
        self.counters.count_sample(t_ns)
        try:
            self._on_sample(JoystickSample(self.config.name, t_ns, 0, axes, buttons))
        except Exception:
            self.counters.dropped += 1

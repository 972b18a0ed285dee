"""Hands-on-joystick station control: the profile's `bindings` turn button presses into station actions.

A gesture lasts from the first bound button pressed to the last one released. An action fires when exactly
its buttons are held together (no other bound button was part of the gesture) for its `hold_s`. Of several
actions on the same buttons, the one with the longest hold fires as soon as that hold is reached; a shorter one
fires on release if the buttons were held at least its `hold_s`. At most one action fires per gesture, and a
gesture whose device goes silent is cancelled, never completed.

`StationBindings` follows the station's joystick samples (`StationRuntime.subscribe`), composes the profile's
buttons from the devices, and runs the actions on its own thread (driver threads never wait for an episode to
start or stop).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass

from excap.core.clock import now_ns
from excap.core.periodic import Worker
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.machine.profiles import StationBinding
from excap.station.runtime import StationRuntime, Subscription

SILENT_AFTER_S = 0.5  # a periodic device silent this long cancels the gesture in progress
TICK_S = 0.02


@dataclass(frozen=True)
class Pending:
    """What the gesture in progress would do: `on_release` now, `next_action` once held `next_in_s` longer."""

    buttons: tuple[str, ...]
    on_release: str = ""
    next_action: str = ""
    next_in_s: float = 0.0

    def text(self) -> str:
        parts = [f"holding {'+'.join(self.buttons)}"]
        if self.on_release:
            parts.append(f"release: {self.on_release}")
        if self.next_action:
            parts.append(f"hold {self.next_in_s:.1f} s more: {self.next_action}")
        return ", ".join(parts)


class Gestures:
    """Edge detection and hold times over the bound buttons; pure, fed with (time, pressed buttons)."""

    def __init__(self, bindings: tuple[StationBinding, ...]) -> None:
        self.bound = frozenset(name for b in bindings for name in b.buttons)
        self._ladders: dict[frozenset[str], list[StationBinding]] = {}
        for binding in sorted(bindings, key=lambda b: b.hold_s):
            self._ladders.setdefault(binding.buttons, []).append(binding)
        self._pressed: frozenset[str] = frozenset()
        self._since = 0.0
        self._union: set[str] = set()
        self._held: dict[frozenset[str], float] = {}
        self._fired = False

    def update(self, t_s: float, pressed: frozenset[str] | set[str]) -> list[str]:
        """Feed the buttons held at `t_s` (seconds, monotonic); the actions that fire now."""
        pressed = frozenset(pressed) & self.bound
        fired: list[str] = []
        if pressed != self._pressed:
            if self._pressed:
                self._held[self._pressed] = max(self._held.get(self._pressed, 0.0), t_s - self._since)
            if not pressed and self._pressed and not self._fired:
                binding = self._release_binding()
                if binding is not None:
                    fired.append(binding.action)
            if not self._pressed:  # a new gesture
                self._union, self._held, self._fired = set(), {}, False
            self._pressed, self._since = pressed, t_s
            self._union |= pressed
        if pressed and not self._fired and pressed == self._union:
            ladder = self._ladders.get(pressed)
            if ladder and t_s - self._since >= ladder[-1].hold_s:
                fired.append(ladder[-1].action)
                self._fired = True
        return fired

    def cancel(self) -> None:
        """Forget the gesture in progress (its device went silent): nothing fires for it."""
        self._pressed, self._union, self._held, self._fired = frozenset(), set(), {}, False

    def _release_binding(self) -> StationBinding | None:
        union = frozenset(self._union)
        held = self._held.get(union, 0.0)
        reached = [b for b in self._ladders.get(union, []) if b.hold_s <= held]
        return reached[-1] if reached else None

    def pending(self, t_s: float) -> Pending | None:
        if not self._pressed or self._fired:
            return None
        buttons = tuple(sorted(self._pressed))
        if self._pressed != self._union:
            return Pending(buttons)
        held = t_s - self._since
        ladder = self._ladders.get(self._pressed, [])
        reached = [b for b in ladder if b.hold_s <= held]
        later = [b for b in ladder if b.hold_s > held]
        return Pending(buttons, reached[-1].action if reached else "", later[0].action if later else "",
                       later[0].hold_s - held if later else 0.0)


class StationBindings:
    """Joystick buttons of a running station -> `act(action, source)` on a thread of its own."""

    def __init__(self, runtime: StationRuntime, act: Callable[[str, str], object],
                 bindings: tuple[StationBinding, ...] | None = None) -> None:
        self.runtime = runtime
        self.act = act
        self.bindings = runtime.profile.station_bindings if bindings is None else bindings
        self.gestures = Gestures(self.bindings)
        config = runtime.config
        self._sources = {name: source for name, source in config.button_inputs.items() if name in self.gestures.bound}
        periodic = {j.name for j in config.joysticks if j.periodic}
        self._periodic = {s.device for s in self._sources.values()} & periodic
        self._latest: dict[str, JoystickSample] = {}
        self._queue: queue.SimpleQueue[tuple[float, frozenset[str]]] = queue.SimpleQueue()
        self._pressed: frozenset[str] = frozenset()
        # Waits for button changes, looking again every TICK_S for held gestures: driven by events, not a rate.
        self._worker = Worker("station-bindings", self._run)
        self._subscription: Subscription | None = None
        self.fired: list[str] = []

    def describe(self) -> list[dict[str, object]]:
        return [{"action": b.action, "buttons": sorted(b.buttons), "hold_s": b.hold_s} for b in self.bindings]

    def start(self) -> StationBindings:
        if self._sources:
            self._subscription = self.runtime.subscribe(joystick=self._on_sample)
            self._worker.start()
        return self

    def stop(self) -> None:
        self._worker.request_stop()
        if self._subscription is not None:
            self._subscription.cancel()
        self._worker.join()

    def pending(self) -> Pending | None:
        return self.gestures.pending(now_ns() / 1e9)

    def _on_sample(self, sample: JoystickSample) -> None:  # driver thread: never blocks
        if all(s.device != sample.device for s in self._sources.values()):
            return
        self._latest[sample.device] = sample
        pressed = frozenset(name for name, source in self._sources.items()
                            if source.device in self._latest
                            and source.index < len(self._latest[source.device].buttons)
                            and self._latest[source.device].buttons[source.index])
        if pressed != self._pressed:
            self._pressed = pressed
            self._queue.put((sample.t_ns / 1e9, pressed))

    def _silent(self, t_ns: int) -> bool:
        return any(device not in self._latest or (t_ns - self._latest[device].t_ns) / 1e9 > SILENT_AFTER_S
                   for device in self._periodic)

    def _run(self) -> None:
        while not self._worker.stopping:
            try:
                t_s, pressed = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                t_ns = now_ns()
                if self._silent(t_ns) and self._pressed:
                    self.gestures.cancel()
                    self._pressed = frozenset()
                    continue
                t_s, pressed = t_ns / 1e9, self._pressed
            for action in self.gestures.update(t_s, pressed):
                self.fired.append(action)
                self.act(action, "joystick")  # at most one action per gesture: its duration is harmless

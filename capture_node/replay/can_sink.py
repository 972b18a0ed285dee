"""Replay onto a CAN bus: the recorded raw frames, only the command frames, or commands re-encoded.

Sending frames onto a bus connected to a machine MOVES THE MACHINE. A sink is a dry run unless
`transmit=True`: it then counts (and can print) the frames it would send and opens no bus at all.
Transmitting onto any interface other than python-can's `virtual` additionally needs
`allow_machine=True` (the CLI's `--i-understand-this-moves-the-machine`).

Whenever command frames (BJM1 / EJM1) have been sent, pausing or ending the replay sends neutral
command frames (sticks centred, enable released) from each joystick source address seen.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import can
import numpy as np

from excap.core.errors import ConfigError, EpisodeError
from excap.drivers.can.bus_config import CanBusConfig, open_bus
from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.joystick_messages import BJM1_PGN, BUTTONS, EJM1_PGN, encode_bjm1, encode_ejm1
from excap.drivers.machine.profiles import load_profile
from excap.episode.can_frames import frame_problem
from excap.episode.reader import EpisodeReader
from excap.replay.timeline import Sample

MODES = ("all", "commands", "control")
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a name in schemas/profiles, never a path
SAFE_INTERFACES = frozenset({"virtual"})
COMMAND_PGNS = (BJM1_PGN, EJM1_PGN)


def parse_can_target(text: str) -> CanBusConfig:
    """`INTERFACE:CHANNEL` (e.g. `virtual:replay0`, `socketcan:can0`) as a bus configuration."""
    interface, sep, channel = text.partition(":")
    if not sep or not interface or not channel:
        raise ConfigError(f"--can {text!r}: expected INTERFACE:CHANNEL, e.g. virtual:replay0 or socketcan:can0")
    return CanBusConfig(name="replay", interface=interface, channel=channel)


def is_command_frame(arbitration_id: int, extended: bool) -> bool:
    """True for J1939 joystick command frames (BJM1, EJM1)."""
    return extended and J1939Id.parse(arbitration_id).pgn in COMMAND_PGNS


def frame_from_row(row: dict[str, Any], fd: bool) -> can.Message:
    """A recorded raw CAN row as a python-can message (timestamp left for the sender)."""
    dlc = int(row["dlc"])
    length = can.util.dlc2len(dlc) if fd else min(dlc, 8)
    data = bytes(np.asarray(row["data"], dtype=np.uint8)[:length])
    return can.Message(arbitration_id=int(row["id"]), is_extended_id=bool(row["extended"]), dlc=dlc if not fd
                       else length, data=data, is_fd=fd)


def neutral_frame(arbitration_id: int) -> can.Message:
    """A neutral BJM1 / EJM1 frame (no deflection, no button) from the same source address."""
    ident = J1939Id.parse(arbitration_id)
    if ident.pgn == EJM1_PGN:
        return encode_ejm1(0.0, 0.0, 0.0, ident.source_address, ident.priority)
    return encode_bjm1(0.0, 0.0, [0] * BUTTONS, ident.source_address, ident.priority)


def candump_line(msg: can.Message, t_s: float, channel: str) -> str:
    ident = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
    separator = "##0" if msg.is_fd else "#"
    return f"({t_s:.6f}) {channel} {ident}{separator}{bytes(msg.data).hex().upper()}"


@dataclass
class CanSinkReport:
    target: str
    mode: str
    transmit: bool
    frames: int = 0  # sent, or that would have been sent in a dry run
    neutral_frames: int = 0
    errors: int = 0
    invalid: int = 0  # recorded rows that are not valid CAN frames, left out
    per_id: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "mode": self.mode, "transmit": self.transmit, "frames": self.frames,
                "neutral_frames": self.neutral_frames, "errors": self.errors, "invalid": self.invalid,
                "ids": len(self.per_id)}


class CanSink:
    """Frames of the chosen recorded streams, sent on `target` when due (or only counted: dry run)."""

    def __init__(self, target: CanBusConfig, mode: str = "all", transmit: bool = False, allow_machine: bool = False,
                 sources: Sequence[str] | None = None, echo: TextIO | None = None,
                 bus_factory: Callable[[CanBusConfig], can.BusABC] = open_bus) -> None:
        if mode not in MODES:
            raise ConfigError(f"CAN replay mode must be one of {', '.join(MODES)}, not {mode!r}")
        if transmit and target.interface not in SAFE_INTERFACES and not allow_machine:
            raise ConfigError(f"refusing to transmit onto {target.interface}:{target.channel}: frames on a machine's "
                              "bus move the machine; add --i-understand-this-moves-the-machine to do it")
        self.target = target
        self.mode = mode
        self.transmit = transmit
        self.sources = list(sources) if sources else None
        self.echo = echo
        self.bus_factory = bus_factory
        self.bus: can.BusABC | None = None
        self.report = CanSinkReport(f"{target.interface}:{target.channel}", mode, transmit)
        self._fd: dict[str, bool] = {}
        self._command_ids: set[int] = set()
        self._layout: Any = None
        self._functions: list[str] = []
        self._clock_offset_ns = 0
        self._last_t_ns = 0

    def paths(self, reader: EpisodeReader) -> list[str]:
        """The streams this sink replays; raises ConfigError if the episode has none of them."""
        if self.mode == "control":
            name = str(reader.metadata.get("profile") or "excavator_20t")
            if not PROFILE_NAME.fullmatch(name):
                raise EpisodeError(f"{reader.path}: profile {name[:60]!r} is not a profile name (letters, digits, "
                                   "'_', '.' or '-')")
            profile = load_profile(name)
            if profile.cab_joysticks is None:
                raise ConfigError(f"profile {profile.name}: no cab_joysticks layout to re-encode /control with")
            self._layout = profile.cab_joysticks
            self._functions = reader.command_names
            missing = sorted(profile.cab_joysticks.functions_covered - set(self._functions))
            if missing:
                raise ConfigError(f"/control lacks {', '.join(missing)} needed by the cab joystick layout")
            return ["control"]
        channels = reader.paths("can")
        if self.sources is not None:
            wanted = [s if s.startswith("can/") else f"can/{s}" for s in self.sources]
            unknown = [w for w in wanted if w not in channels]
            if unknown:
                raise ConfigError(f"no CAN stream {', '.join(unknown)} (episode has: {', '.join(channels) or 'none'})")
            channels = wanted
        if not channels:
            raise ConfigError(f"{reader.path}: no raw CAN frames to replay")
        for path in channels:
            self._fd[path] = reader.stream(path).fd
        self._clock_offset_ns = int(reader.metadata.get("clock_offset_ns", 0))
        return channels

    def open(self) -> None:
        if self.transmit and self.bus is None:
            self.bus = self.bus_factory(self.target)

    def frames_for(self, sample: Sample) -> list[can.Message] | None:
        """The frames a sample becomes; None for a recorded row that is not a valid CAN frame (never sent)."""
        if sample.kind == "control":
            if self._layout is None:
                return []
            values = [float(v) if np.isfinite(v) else 0.0 for v in np.asarray(sample.row["commands"]).tolist()]
            return self._layout.frames(self._functions, values, bool(sample.row["enabled"]))
        if sample.kind != "can":
            return []
        row = sample.row
        fd = self._fd.get(sample.path, False)
        dlc = int(row["dlc"])
        if frame_problem(int(row["id"]), bool(row["extended"]), dlc, dlc, fd) is not None:
            return None  # excap validate lists such rows
        if self.mode == "commands" and not is_command_frame(int(row["id"]), bool(row["extended"])):
            return []
        return [frame_from_row(row, fd)]

    def _send(self, msg: can.Message, t_ns: int, neutral: bool = False) -> None:
        if is_command_frame(msg.arbitration_id, msg.is_extended_id) and not neutral:
            self._command_ids.add(msg.arbitration_id)
        if self.echo is not None:
            print(candump_line(msg, (t_ns + self._clock_offset_ns) / 1e9, self.report.target), file=self.echo)
        if neutral:
            self.report.neutral_frames += 1
        else:
            self.report.frames += 1
            self.report.per_id[msg.arbitration_id] = self.report.per_id.get(msg.arbitration_id, 0) + 1
        if self.bus is not None:
            try:
                self.bus.send(msg, timeout=0.05)
            except can.CanError as exc:
                self.report.errors += 1
                if self.report.errors == 1:
                    print(f"excap: warning: CAN send failed: {exc}", file=sys.stderr)

    def prepare(self, sample: Sample) -> tuple[int, list[can.Message] | None]:
        return sample.t_ns, self.frames_for(sample)

    def emit(self, prepared: tuple[int, list[can.Message] | None]) -> None:
        t_ns, frames = prepared
        self._last_t_ns = t_ns
        if frames is None:
            self.report.invalid += 1
            return
        for msg in frames:
            self._send(msg, t_ns)

    def neutralise(self) -> None:
        """Send neutral command frames for every joystick whose commands were replayed."""
        t_ns = self._last_t_ns
        if self._layout is not None and self.report.frames:
            for msg in self._layout.frames(self._functions, [0.0] * len(self._functions), False):
                self._send(msg, t_ns, neutral=True)
            return
        for arbitration_id in sorted(self._command_ids):
            self._send(neutral_frame(arbitration_id), t_ns, neutral=True)

    def pause(self) -> None:
        self.neutralise()

    def resume(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.neutralise()
        finally:
            if self.bus is not None:
                self.bus.shutdown()
                self.bus = None

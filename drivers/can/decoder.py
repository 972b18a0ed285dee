"""Decodes CAN frames with a DBC through cantools, J1939-aware.

J1939 messages are matched by (PGN, source address) first, then by PGN alone, so one DBC entry
serves the same parameter group from any node unless the DBC names the node. J1939 raw values in
the error / not-available ranges decode as NaN, never as plausible numbers.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Message
from cantools.database.errors import UnsupportedDatabaseFormatError

from excap.core.errors import ConfigError
from excap.drivers.can.j1939 import J1939Id, not_available_threshold


@dataclass(frozen=True)
class DecodedFrame:
    message: Message
    source_address: int
    values: dict[str, float]


class FrameDecoder:
    def __init__(self, dbc: Path | Sequence[Path]) -> None:
        self.paths = [Path(dbc)] if isinstance(dbc, str | Path) else [Path(p) for p in dbc]
        if not self.paths:
            raise ConfigError("no CAN database given")
        self.path = self.paths[0]
        self.database = cantools.database.Database(strict=False)
        for path in self.paths:
            try:
                self.database.add_dbc_file(str(path))
            except (OSError, UnsupportedDatabaseFormatError, ValueError) as exc:
                raise ConfigError(f"{path}: cannot load CAN database ({exc})") from exc
            except Exception as exc:  # cantools' DBC parser raises its own parse errors
                raise ConfigError(f"{path}: cannot load CAN database ({type(exc).__name__}: {exc})") from exc
        self._by_pgn_sa: dict[tuple[int, int], Message] = {}
        self._by_pgn: dict[int, Message] = {}
        self._by_id: dict[tuple[int, bool], Message] = {}
        self._j1939_signals: dict[str, dict[str, int | None]] = {}
        for message in self.database.messages:
            if message.is_extended_frame and message.protocol == "j1939":
                ident = J1939Id.parse(message.frame_id)
                self._by_pgn_sa[(ident.pgn, ident.source_address)] = message
                self._by_pgn.setdefault(ident.pgn, message)
                self._j1939_signals[message.name] = {
                    s.name: (None if s.is_signed else not_available_threshold(s.length)) for s in message.signals
                }
            else:
                self._by_id[(message.frame_id, message.is_extended_frame)] = message
        self.undecodable = 0  # frames matching a message but of the wrong length or content
        self.unknown = 0  # frames matching no message

    @property
    def messages(self) -> list[Message]:
        return list(self.database.messages)

    def lookup(self, arbitration_id: int, is_extended: bool) -> Message | None:
        if is_extended:
            ident = J1939Id.parse(arbitration_id)
            found = self._by_pgn_sa.get((ident.pgn, ident.source_address)) or self._by_pgn.get(ident.pgn)
            if found is not None:
                return found
        return self._by_id.get((arbitration_id, is_extended))

    def decode(self, arbitration_id: int, is_extended: bool, data: bytes) -> DecodedFrame | None:
        message = self.lookup(arbitration_id, is_extended)
        if message is None:
            self.unknown += 1
            return None
        if len(data) != message.length:
            self.undecodable += 1
            return None
        try:
            raw = message.decode(data, decode_choices=False, scaling=False)
        except (cantools.database.DecodeError, ValueError):
            self.undecodable += 1
            return None
        if not isinstance(raw, dict):  # only container messages decode to a list of parts
            self.undecodable += 1
            return None
        limits = self._j1939_signals.get(message.name, {})
        values: dict[str, float] = {}
        for signal in message.signals:
            raw_value = raw.get(signal.name)
            limit = limits.get(signal.name)
            if not isinstance(raw_value, int | float) or (limit is not None and raw_value > limit):
                values[signal.name] = math.nan
            else:
                scaled = signal.conversion.raw_to_scaled(raw_value, decode_choices=False)
                values[signal.name] = float(scaled) if isinstance(scaled, int | float) else math.nan
        source = arbitration_id & 0xFF if is_extended else 0
        return DecodedFrame(message, source, values)

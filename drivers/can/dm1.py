"""SAE J1939-73 DM1: active diagnostic trouble codes, from single frames or BAM transport.

Payload: two lamp-status bytes, then one 4-byte DTC per active fault:
SPN low 16 bits, SPN high 3 bits with the 5-bit FMI, then the conversion-method bit with a 7-bit
occurrence count. "No active fault" is sent as an all-zero DTC; unused bytes are 0xFF.
"""

from dataclasses import asdict, dataclass
from typing import Any

from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.j1939_tp import BamReassembler

DM1_PGN = 0xFECA  # 65226
LAMP_STATES = {0: "off", 1: "on", 2: "error", 3: "not_available"}
FLASH_STATES = {0: "slow", 1: "fast", 2: "reserved", 3: "off"}
_LAMPS = ("malfunction", "red_stop", "amber_warning", "protect")  # most significant bit pair first


@dataclass(frozen=True)
class Dtc:
    spn: int
    fmi: int
    occurrence_count: int
    conversion_method: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Dtc":
        spn = raw[0] | (raw[1] << 8) | ((raw[2] >> 5) << 16)
        return cls(spn, raw[2] & 0x1F, raw[3] & 0x7F, raw[3] >> 7)


@dataclass(frozen=True)
class Dm1:
    lamps: dict[str, str]
    flash: dict[str, str]
    dtcs: tuple[Dtc, ...]

    def detail(self) -> dict[str, Any]:
        """JSON-ready form, as recorded in `dm1` events."""
        return {"lamps": self.lamps, "flash": self.flash, "dtcs": [asdict(d) for d in self.dtcs]}


def _pairs(byte: int, names: dict[int, str]) -> dict[str, str]:
    return {lamp: names[(byte >> (6 - 2 * i)) & 0x3] for i, lamp in enumerate(_LAMPS)}


def decode_dm1(payload: bytes) -> Dm1:
    """Lamp status and active DTCs of one DM1 payload (8 bytes or more)."""
    if len(payload) < 2:
        raise ValueError(f"DM1 payload of {len(payload)} bytes: needs at least the 2 lamp-status bytes")
    dtcs = []
    for offset in range(2, len(payload) - 3, 4):
        raw = payload[offset:offset + 4]
        if raw == b"\xff\xff\xff\xff":  # padding
            continue
        dtc = Dtc.from_bytes(raw)
        if dtc.spn == 0:  # "no active fault" (SPN 0 is not a parameter)
            continue
        dtcs.append(dtc)
    return Dm1(_pairs(payload[0], LAMP_STATES), _pairs(payload[1], FLASH_STATES), tuple(dtcs))


class Dm1Monitor:
    """Finds DM1 messages in a stream of extended frames: single-frame ones and BAM-reassembled ones."""

    def __init__(self) -> None:
        self.transport = BamReassembler()

    def feed(self, arbitration_id: int, data: bytes, t_ns: int) -> tuple[int, Dm1] | None:
        """(source address, DM1) when this frame completes a DM1 message, else None."""
        ident = J1939Id.parse(arbitration_id)
        if ident.pgn == DM1_PGN:
            return (ident.source_address, decode_dm1(bytes(data))) if len(data) >= 2 else None
        message = self.transport.feed(arbitration_id, data, t_ns)
        if message is None or message.pgn != DM1_PGN:
            return None
        return message.source_address, decode_dm1(message.payload)

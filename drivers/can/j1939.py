"""SAE J1939 29-bit identifiers: priority, parameter group number (PGN) and source address."""

from dataclasses import dataclass

PDU2_THRESHOLD = 240  # PDU format >= 240: PDU2 (broadcast, PS is a group extension)


@dataclass(frozen=True)
class J1939Id:
    priority: int
    pgn: int
    source_address: int
    destination_address: int | None = None  # PDU1 only

    @classmethod
    def parse(cls, arbitration_id: int) -> "J1939Id":
        priority = (arbitration_id >> 26) & 0x7
        data_page = (arbitration_id >> 24) & 0x3  # extended data page and data page
        pdu_format = (arbitration_id >> 16) & 0xFF
        pdu_specific = (arbitration_id >> 8) & 0xFF
        source = arbitration_id & 0xFF
        if pdu_format < PDU2_THRESHOLD:
            return cls(priority, (data_page << 16) | (pdu_format << 8), source, pdu_specific)
        return cls(priority, (data_page << 16) | (pdu_format << 8) | pdu_specific, source)

    def arbitration_id(self) -> int:
        pdu_format = (self.pgn >> 8) & 0xFF
        pgn = self.pgn
        if pdu_format < PDU2_THRESHOLD:
            pgn = (self.pgn & 0x3FF00) | (self.destination_address if self.destination_address is not None
                                          else 0xFF)
        return ((self.priority & 0x7) << 26) | ((pgn & 0x3FFFF) << 8) | (self.source_address & 0xFF)


def not_available_threshold(length_bits: int) -> int | None:
    """Largest valid raw value of an unsigned J1939 parameter of this width, or None if not ranged.

    J1939-71: the top of each range is reserved; 0xFE.. means error and 0xFF.. not available.
    Discrete 2-bit states use 10b (error) and 11b (not available); 4-bit ones 1110b and 1111b.
    """
    if length_bits == 2:
        return 1
    if length_bits == 4:
        return 0xD
    if length_bits >= 8 and length_bits % 8 == 0:
        return (0xFA << (length_bits - 8)) | ((1 << (length_bits - 8)) - 1)
    return None

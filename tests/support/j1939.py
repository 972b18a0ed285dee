"""J1939 frames built for tests: broadcast (BAM) transport-protocol transfers, a DM1 payload."""

from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.j1939_tp import BYTES_PER_PACKET, CM_BAM, TP_CM_PGN, TP_DT_PGN


def bam_frames(pgn: int, source: int, payload: bytes) -> list[tuple[int, bytes]]:
    """TP.CM_BAM then the TP.DT packets of one broadcast message, as (arbitration id, data)."""
    packets = -(-len(payload) // BYTES_PER_PACKET)
    cm_id = J1939Id(7, TP_CM_PGN, source, 0xFF).arbitration_id()
    dt_id = J1939Id(7, TP_DT_PGN, source, 0xFF).arbitration_id()
    cm = bytes([CM_BAM]) + len(payload).to_bytes(2, "little") + bytes([packets, 0xFF]) + pgn.to_bytes(3, "little")
    frames = [(cm_id, cm)]
    for index in range(packets):
        chunk = payload[index * BYTES_PER_PACKET:(index + 1) * BYTES_PER_PACKET]
        frames.append((dt_id, bytes([index + 1]) + chunk + b"\xff" * (BYTES_PER_PACKET - len(chunk))))
    return frames


def dm1_payload() -> bytes:
    """Amber lamp on, three active DTCs: 14 bytes, too long for one frame."""
    dtcs = [(190, 2, 5, 0), (520193, 31, 126, 1), (84, 9, 1, 0)]
    body = b"".join(
        bytes([spn & 0xFF, (spn >> 8) & 0xFF, ((spn >> 16) << 5) | fmi, (cm << 7) | oc]) for spn, fmi, oc, cm in dtcs)
    return bytes([0x04, 0xFF]) + body

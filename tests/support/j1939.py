"""J1939 frames built for tests: broadcast (BAM) transport-protocol transfers."""

from drivers.can.j1939 import J1939Id
from drivers.can.j1939_tp import BYTES_PER_PACKET, CM_BAM, TP_CM_PGN, TP_DT_PGN


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

"""SAE J1939-21 transport protocol: reassembly of broadcast (BAM) multi-packet messages.

A sender announces a message of 9 to 1785 bytes with TP.CM_BAM (PGN 0xEC00, control byte 32,
destination global), then sends it in TP.DT packets (PGN 0xEB00) of one sequence number and seven
data bytes each. Sessions are kept per source address; a session ends when its last packet
arrives, when a packet is out of order or missing, when the sender announces a new message or
aborts, or when more than T1 (750 ms) passes between two packets.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from excap.drivers.can.j1939 import J1939Id

TP_CM_PGN = 0xEC00
TP_DT_PGN = 0xEB00
CM_BAM = 32
CM_ABORT = 255
GLOBAL_ADDRESS = 0xFF
T1_NS = 750_000_000
MIN_SIZE = 9
MAX_SIZE = 1785
BYTES_PER_PACKET = 7


@dataclass(frozen=True)
class TransportMessage:
    """One reassembled message: its PGN, sender and payload, `t_ns` of its last packet."""

    pgn: int
    source_address: int
    payload: bytes
    t_ns: int


@dataclass
class _Session:
    pgn: int
    size: int
    packets: int
    last_t_ns: int
    next_sequence: int = 1
    data: bytearray = field(default_factory=bytearray)


@dataclass
class TransportStats:
    completed: int = 0
    timeouts: int = 0
    aborts: int = 0  # out-of-order or missing packets, superseded sessions, sender aborts, bad announcements
    orphan_packets: int = 0  # TP.DT packets without an open session


class BamReassembler:
    """Feed it every extended frame (any order of senders); it returns each completed BAM message."""

    def __init__(self, t1_ns: int = T1_NS) -> None:
        self.t1_ns = t1_ns
        self.stats = TransportStats()
        self._sessions: dict[int, _Session] = {}

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def feed(self, arbitration_id: int, data: bytes, t_ns: int) -> TransportMessage | None:
        self.expire(t_ns)
        ident = J1939Id.parse(arbitration_id)
        if ident.pgn == TP_CM_PGN:
            self._control(ident, bytes(data), t_ns)
        elif ident.pgn == TP_DT_PGN and ident.destination_address == GLOBAL_ADDRESS:
            return self._packet(ident.source_address, bytes(data), t_ns)
        return None

    def expire(self, t_ns: int) -> None:
        """Drop sessions whose next packet is overdue (T1)."""
        for source in [s for s, session in self._sessions.items() if t_ns - session.last_t_ns > self.t1_ns]:
            del self._sessions[source]
            self.stats.timeouts += 1

    def _control(self, ident: J1939Id, data: bytes, t_ns: int) -> None:
        if len(data) < 8:
            return
        control = data[0]
        pgn = int.from_bytes(data[5:8], "little")
        source = ident.source_address
        if control == CM_ABORT:
            session = self._sessions.get(source)
            if session is not None and session.pgn == pgn:
                del self._sessions[source]
                self.stats.aborts += 1
            return
        if control != CM_BAM or ident.destination_address != GLOBAL_ADDRESS:
            return
        if source in self._sessions:  # a new announcement ends the message in progress
            del self._sessions[source]
            self.stats.aborts += 1
        size = int.from_bytes(data[1:3], "little")
        packets = data[3]
        if not MIN_SIZE <= size <= MAX_SIZE or packets != -(-size // BYTES_PER_PACKET):
            self.stats.aborts += 1
            return
        self._sessions[source] = _Session(pgn, size, packets, t_ns)

    def _packet(self, source: int, data: bytes, t_ns: int) -> TransportMessage | None:
        session = self._sessions.get(source)
        if session is None or not data:
            self.stats.orphan_packets += 1
            return None
        if data[0] != session.next_sequence:
            del self._sessions[source]
            self.stats.aborts += 1
            return None
        session.data += data[1:1 + BYTES_PER_PACKET]
        session.next_sequence += 1
        session.last_t_ns = t_ns
        if session.next_sequence <= session.packets:
            return None
        del self._sessions[source]
        if len(session.data) < session.size:  # short final packet
            self.stats.aborts += 1
            return None
        self.stats.completed += 1
        return TransportMessage(session.pgn, source, bytes(session.data[:session.size]), t_ns)


def reassemble(frames: Iterable[tuple[int, bytes, int]], t1_ns: int = T1_NS) -> Iterator[TransportMessage]:
    """Yield the BAM messages in a sequence of (arbitration id, data, t_ns) extended frames."""
    reassembler = BamReassembler(t1_ns)
    for arbitration_id, data, t_ns in frames:
        message = reassembler.feed(arbitration_id, data, t_ns)
        if message is not None:
            yield message

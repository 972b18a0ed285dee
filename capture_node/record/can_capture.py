"""Records a python-can bus: raw frames on one stream, DBC-decoded signals on one stream per message.

One reader thread per bus receives frames and hands each to `on_frame`. It also watches the bus:
SocketCAN error frames and `bus.state` changes become `can_bus_off` / `can_error_passive` /
`can_error_active` / `can_restarted` events. When receiving fails (the adapter is unplugged, the
slcan serial device vanishes) it records one `fault` event, reports `Health.DISCONNECTED` and, when
the capture was made from a `CanBusConfig`, reopens the bus every `reconnect_interval_s` until it
works again (`reconnect` event). The recording itself never stops because of a bus. Any other
error escaping the reader thread is the bus's fault (`guard`): health FAILED, the capture stops.
"""

import logging
import threading
from typing import TYPE_CHECKING

import can
import numpy as np

from excap.core.clock import now_ns, utc_offset_ns
from excap.core.errors import DriverError
from excap.core.periodic import Cadence, Late
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.can.bus_config import CanBusConfig, open_bus
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.can.dm1 import Dm1Monitor
from excap.drivers.reader import DeviceReader, Outage, SourceLost
from excap.episode.streams import CAN_CLASSIC_BYTES, CAN_FD_BYTES, can_decoded_spec, can_spec

if TYPE_CHECKING:
    from excap.record.switch import EpisodeSink, StreamSink

log = logging.getLogger(__name__)

# SocketCAN error frames (linux/can/error.h): error class bits in the id, details in the data.
CAN_ERR_CRTL = 0x004
CAN_ERR_BUSOFF = 0x040
CAN_ERR_RESTARTED = 0x100
CAN_ERR_CNT = 0x200
CAN_ERR_CRTL_RX_PASSIVE = 0x10  # data[1]
CAN_ERR_CRTL_TX_PASSIVE = 0x20
CAN_ERR_CRTL_ACTIVE = 0x40

#: Seconds one receive call may block; bounds how long stopping takes.
RECV_TIMEOUT_S = 0.05
#: Seconds between reads of `bus.state`.
STATE_POLL_S = 0.2

#: Interfaces whose frame timestamps are the host's wall clock taken at the wire: SocketCAN's kernel receive
#: time, python-can's `virtual` bus's send time. For these the frame's `t_ns` is that stamp on the monotonic
#: clock (a late wake of the reader thread does not delay it); for any other interface (slcan, vendor adapters
#: with their own clocks) it is the time the reader got the frame.
HOST_STAMPED_INTERFACES = frozenset({"socketcan", "virtual"})
#: A host stamp further than this in the past (or in the future) is not trusted (the wall clock stepped).
MAX_STAMP_AGE_NS = 1_000_000_000

_STATE_EVENTS = {can.BusState.ERROR: "can_bus_off", can.BusState.PASSIVE: "can_error_passive"}


def skip_malformed_input(bus: can.BusABC, exc: Exception) -> bool:
    """True if `exc` is what python-can's text-protocol interfaces (slcan) raise on one line they cannot parse
    (a ValueError or IndexError, or a CanOperationError wrapping bytes that are not UTF-8), and the bus can go
    on reading: the adapter itself is fine. python-can 4.6's slcan keeps a line that is not UTF-8 in its read
    buffer, so every later read would fail on it again; that line is dropped here."""
    cause = exc.__cause__ if isinstance(exc, can.CanError) else exc
    if not isinstance(cause, ValueError | IndexError) or isinstance(cause, OSError):
        return False
    if isinstance(cause, UnicodeDecodeError):
        buffer = getattr(bus, "_buffer", None)
        if not isinstance(buffer, bytearray):
            return False  # cannot drop the line: reopen the bus instead
        buffer.clear()
    return True


def frame_problem(msg: can.Message, width: int) -> str | None:
    """Why a received frame cannot be recorded as it is, or None. python-can passes some malformed adapter
    input on as messages (negative or oversized ids, a DLC that does not match the data)."""
    if not 0 <= msg.arbitration_id < (1 << 29 if msg.is_extended_id else 1 << 11):
        return f"id {msg.arbitration_id:#x} out of range"
    if not 0 <= msg.dlc <= width or (not msg.is_remote_frame and len(msg.data) != msg.dlc):
        return f"DLC {msg.dlc} with {len(msg.data)} data bytes on a {width}-byte channel"
    if not 0 <= msg.timestamp < 2**63 / 1e9:
        return f"timestamp {msg.timestamp} out of range"
    return None


class CanCapture:
    """Records one bus: a reader thread receives frames and hands each to `on_frame`.

    Built directly around an open bus, the caller keeps owning that bus and a lost bus stays lost;
    built with `from_config`, the capture owns the bus, shuts it down on stop and reopens it after a failure.
    """

    def __init__(self, recorder: "EpisodeSink", channel: str, bus: can.BusABC, decoder: FrameDecoder | None,
                 interface: str, fd: bool = False, config: CanBusConfig | None = None) -> None:
        self.recorder = recorder
        self.channel = channel
        self.bus: can.BusABC | None = bus
        self.config = config
        self._health = Health.OK
        self.counters = DriverCounters()
        self.bus_state = can.BusState.ACTIVE
        self.decoder = decoder
        self.width = CAN_FD_BYTES if fd else CAN_CLASSIC_BYTES
        dbc = ", ".join(str(path) for path in decoder.paths) if decoder else ""
        self.raw = recorder.add_stream(can_spec(channel, interface, fd, dbc))
        self._listeners: list[can.Listener] = []
        self._decoded: dict[tuple[str, int], StreamSink] = {}
        self._lock = threading.Lock()
        self.frames = 0
        self.error_frames = 0
        self._reader: DeviceReader | None = None
        self._state_poll = Cadence(STATE_POLL_S, Late.SKIP)
        self.guard = ThreadGuard(f"can/{channel}")
        self._send_lock = threading.Lock()
        self._frame_lock = threading.Lock()
        self.dm1 = Dm1Monitor()
        self.host_stamped = interface in HOST_STAMPED_INTERFACES
        self._utc_offset_ns = utc_offset_ns()
        self._last_t_ns = 0

    @classmethod
    def from_config(cls, recorder: "EpisodeSink", config: CanBusConfig,
                    decoder: FrameDecoder | None = None) -> "CanCapture":
        """Open the configured bus (DriverError if it cannot be opened) and capture it as `config.name`.

        Without a decoder, the configuration's `dbc` (if any) is loaded.
        """
        if decoder is None and config.dbc is not None:
            decoder = FrameDecoder(config.dbc)
        bus = open_bus(config)
        try:
            return cls(recorder, config.name, bus, decoder, config.interface, config.fd, config=config)
        except BaseException:
            bus.shutdown()
            raise

    def start(self) -> None:
        if self._reader is not None:
            raise DriverError(f"CAN {self.channel}: capture already started")
        # A lost bus stays open until it is reopened (the caller may own it): nothing to release on a loss.
        self._reader = DeviceReader(
            f"excap-can-{self.channel}", guard=self.guard, counters=self.counters, connect=self._reopen,
            read=self._read, release=lambda: None, lost=self._lost, back=self._back,
            retry_s=self._reconnect_interval_s, loss_errors=(), describe=_describe_error,
            connected=self.bus is not None and self._health != Health.DISCONNECTED)
        self._reader.start()

    def stop(self) -> None:
        """Stop reading; a bus opened from configuration is shut down. Idempotent."""
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self.config is not None and self.bus is not None:
            self._shutdown_bus(self.bus)
            self.bus = None
        self._health = Health.STOPPED

    @property
    def health(self) -> Health:
        if self.guard.failed and self._health is not Health.STOPPED:
            return Health.FAILED
        return self._health

    def add_listener(self, listener: can.Listener) -> None:
        """Another consumer of this bus's frames (e.g. a J1939 joystick), called from the reader thread."""
        self._listeners.append(listener)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Transmit one frame on the captured bus; DriverError while it is disconnected or on failure."""
        bus = self.bus
        if bus is None or self._health == Health.DISCONNECTED:
            raise DriverError(f"CAN {self.channel}: cannot send, bus is disconnected")
        try:
            with self._send_lock:
                bus.send(msg, timeout)
        except (can.CanError, OSError) as exc:
            raise DriverError(f"CAN {self.channel}: send failed ({type(exc).__name__}: {exc})") from exc
        if not (self.config is not None and self.config.receive_own_messages):
            # A bus does not hand back its own frames: record what we put on it, so the episode holds
            # all the traffic (t_device_ns 0: no interface timestamp).
            self.on_frame(can.Message(arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                                      data=msg.data, dlc=msg.dlc, is_fd=msg.is_fd, timestamp=0.0))

    # -- reader thread ----------------------------------------------------------------------

    def _read(self) -> None:
        """Receive one frame (or time out), and read `bus.state` every STATE_POLL_S."""
        bus = self.bus
        if bus is None:
            raise SourceLost("no bus")
        try:
            msg = bus.recv(RECV_TIMEOUT_S)
        except Exception as exc:  # a line the adapter garbled is one bad frame; anything else: device gone
            if skip_malformed_input(bus, exc):
                self.counters.bad_frames += 1
                log.debug("CAN %s: malformed input skipped: %s", self.channel, exc)
                return
            raise SourceLost(_describe_error(exc)) from exc
        if msg is not None:
            try:
                self.on_frame(msg)
            except Exception:  # a bad frame must not end the capture
                self.counters.bad_frames += 1
                log.exception("CAN %s: cannot record frame %r", self.channel, msg)
        if self._state_poll.until_due() <= 0:
            self._state_poll.take()
            self._poll_state(bus)
            self._utc_offset_ns = utc_offset_ns()  # follows the wall clock being slewed

    def _reconnect_interval_s(self) -> float:
        return self.config.reconnect_interval_s if self.config is not None else 1.0

    def _reopen(self) -> bool:
        if self.config is None:
            return False
        if self.bus is not None:
            self._shutdown_bus(self.bus)
            self.bus = None
        try:
            bus = open_bus(self.config)
        except DriverError as exc:
            log.debug("%s", exc)
            return False
        self.bus = bus
        self.bus_state = can.BusState.ACTIVE
        return True

    def _back(self, _outage: Outage) -> None:
        assert self.config is not None
        self._health = Health.OK
        self.recorder.event("reconnect", channel=self.channel, interface=self.config.interface,
                            reconnects=self.counters.reconnects)

    def _shutdown_bus(self, bus: can.BusABC) -> None:
        try:
            with self._send_lock:
                bus.shutdown()
        except Exception as exc:  # a vanished device often fails to close too
            log.debug("CAN %s: shutdown failed: %s", self.channel, exc)
            # slcan's shutdown stops at its failing close command; still release the serial port.
            port = getattr(bus, "serialPortOrig", None)
            if port is not None:
                try:
                    port.close()
                except Exception as close_exc:
                    log.debug("CAN %s: closing the serial port failed: %s", self.channel, close_exc)

    def _poll_state(self, bus: can.BusABC) -> None:
        try:
            state = bus.state
        except Exception:  # backends without state support
            return
        if isinstance(state, can.BusState) and state != self.bus_state:
            self._set_bus_state(state, now_ns(), source="bus_state")

    def _set_bus_state(self, state: can.BusState, t_ns: int, source: str, **detail: object) -> None:
        previous, self.bus_state = self.bus_state, state
        if state in _STATE_EVENTS:
            kind = _STATE_EVENTS[state]
        elif previous == can.BusState.ERROR:
            kind = "can_restarted"
        else:
            kind = "can_error_active"
        self.recorder.event(kind, t_ns=t_ns, channel=self.channel, source=source, **detail)

    def _on_error_frame(self, msg: can.Message, t_ns: int) -> None:
        """Record an error frame, and the controller state changes its SocketCAN error class bits report."""
        err = msg.arbitration_id
        data = bytes(msg.data)
        detail: dict[str, object] = {}
        if err & CAN_ERR_CNT and len(data) >= 8:
            detail = {"tx_errors": data[6], "rx_errors": data[7]}
        self.recorder.event("can_error_frame", t_ns=t_ns, channel=self.channel, id=err, data=data.hex(), **detail)
        if err & CAN_ERR_BUSOFF:
            self._set_bus_state(can.BusState.ERROR, t_ns, "error_frame")
        if err & CAN_ERR_CRTL and len(data) >= 2:
            status = data[1]
            if status & (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE):
                self._set_bus_state(can.BusState.PASSIVE, t_ns, "error_frame",
                                    rx=bool(status & CAN_ERR_CRTL_RX_PASSIVE),
                                    tx=bool(status & CAN_ERR_CRTL_TX_PASSIVE))
            elif status & CAN_ERR_CRTL_ACTIVE:
                self._set_bus_state(can.BusState.ACTIVE, t_ns, "error_frame")
        if err & CAN_ERR_RESTARTED:
            self.bus_state = can.BusState.ERROR  # a restart is reported as such even if bus-off went unseen
            self._set_bus_state(can.BusState.ACTIVE, t_ns, "error_frame")

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the frame being recorded, if any, has been handed to its streams (a frame that opens a new
        decoded stream registers it with the episode switch, which does not hold its registry lock while it
        waits here). Bounded all the same: a stop never hangs on a stuck bus driver."""
        if self._frame_lock.acquire(timeout=timeout_s):
            self._frame_lock.release()
        else:
            log.warning("CAN %s: the frame in hand was not recorded within %.1f s of the stop", self.channel,
                        timeout_s)

    def on_frame(self, msg: can.Message) -> None:
        """Record one frame; serialised, so frames from the reader and from `send` keep t_ns order."""
        with self._frame_lock:
            self._record_frame(msg)

    def receive_time_ns(self, msg: can.Message) -> int:
        """The frame's `t_ns`: its host receive stamp where the interface gives one (HOST_STAMPED_INTERFACES),
        else now; never before the previous frame's, so the stream stays in time order."""
        now = now_ns()
        t_ns = now
        if self.host_stamped and msg.timestamp:
            stamped = int(msg.timestamp * 1e9) - self._utc_offset_ns
            if 0 <= now - stamped <= MAX_STAMP_AGE_NS:
                t_ns = stamped
        t_ns = max(t_ns, self._last_t_ns)
        self._last_t_ns = t_ns
        return t_ns

    def _record_frame(self, msg: can.Message) -> None:
        t_ns = self.receive_time_ns(msg)
        if msg.is_error_frame:
            self.error_frames += 1
            self._on_error_frame(msg, t_ns)
            return
        problem = frame_problem(msg, self.width)
        if problem is not None:
            self.counters.bad_frames += 1
            log.debug("CAN %s: frame not recorded: %s", self.channel, problem)
            return
        data = np.zeros(self.width, np.uint8)
        payload = bytes(msg.data)[: self.width]
        data[: len(payload)] = np.frombuffer(payload, np.uint8)
        t_device = int(msg.timestamp * 1e9) if msg.timestamp else 0
        self.raw.put((t_ns, t_device, msg.arbitration_id, msg.is_extended_id, msg.dlc, data))
        self.frames += 1
        self.counters.count_sample(t_ns)
        for listener in self._listeners:
            listener.on_message_received(msg)
        dm1 = self.dm1.feed(msg.arbitration_id, payload, t_ns) if msg.is_extended_id else None
        if dm1 is not None:
            self.recorder.event("dm1", t_ns=t_ns, channel=self.channel, source_address=dm1[0], **dm1[1].detail())
        if self.decoder is None:
            return
        decoded = self.decoder.decode(msg.arbitration_id, msg.is_extended_id, payload)
        if decoded is None:
            return
        key = (decoded.message.name, decoded.message.frame_id)
        handle = self._decoded.get(key)
        if handle is None:
            signals = [(s.name, s.unit or "") for s in decoded.message.signals]
            handle = self.recorder.add_stream(
                can_decoded_spec(self.channel, decoded.message.name, decoded.message.frame_id, signals))
            self._decoded[key] = handle
        handle.put((t_ns, decoded.source_address, *decoded.values.values()))

    def on_error(self, exc: Exception) -> None:
        """The bus failed: one `fault` event per disconnection, then DISCONNECTED until reopened."""
        if self._reader is not None and self._reader.running:
            self._reader.lose(_describe_error(exc))  # the reader retries from its next turn
        else:
            self._lost(_describe_error(exc))

    def _lost(self, error: str) -> None:
        if self._health == Health.DISCONNECTED:
            return
        self._health = Health.DISCONNECTED
        log.warning("CAN %s: bus lost (%s)", self.channel, error)
        self.recorder.event("fault", channel=self.channel, error=error,
                            reconnecting=self.config is not None)


def _describe_error(exc: BaseException) -> str:
    """The error on one line; python-can wraps the backend's own error, which says what happened."""
    error = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        error += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
    return " ".join(error.split())

"""Records a python-can bus: raw frames on one stream, DBC-decoded signals on one stream per message."""

import threading

import can
import numpy as np

from capture_node.clock import now_ns
from capture_node.recorder import Recorder, StreamHandle
from capture_node.streams import CAN_CLASSIC_BYTES, CAN_FD_BYTES, can_decoded_spec, can_spec
from drivers.can.decoder import FrameDecoder


class _Listener(can.Listener):
    def __init__(self, capture: "CanCapture") -> None:
        self.capture = capture

    def on_message_received(self, msg: can.Message) -> None:
        self.capture.on_frame(msg)

    def on_error(self, exc: Exception) -> None:
        self.capture.on_error(exc)


class CanCapture:
    """Records one bus: a python-can Notifier thread reads it and hands each frame to `on_frame`."""

    def __init__(self, recorder: Recorder, channel: str, bus: can.BusABC, decoder: FrameDecoder | None,
                 interface: str, fd: bool = False) -> None:
        self.recorder = recorder
        self.channel = channel
        self.bus = bus
        self.decoder = decoder
        self.width = CAN_FD_BYTES if fd else CAN_CLASSIC_BYTES
        self.raw = recorder.add_stream(can_spec(channel, interface, fd, str(decoder.path) if decoder else ""))
        self._decoded: dict[tuple[str, int], StreamHandle] = {}
        self._lock = threading.Lock()
        self.frames = 0
        self.error_frames = 0
        self._notifier: can.Notifier | None = None

    def start(self) -> None:
        # A short receive timeout keeps stopping fast: the Notifier thread checks for stop between reads.
        self._notifier = can.Notifier(self.bus, [_Listener(self)], timeout=0.05)

    def stop(self) -> None:
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None

    def on_frame(self, msg: can.Message) -> None:
        t_ns = now_ns()
        if msg.is_error_frame:
            self.error_frames += 1
            self.recorder.event("can_error_frame", t_ns=t_ns, channel=self.channel, id=msg.arbitration_id)
            return
        data = np.zeros(self.width, np.uint8)
        payload = bytes(msg.data)[: self.width]
        data[: len(payload)] = np.frombuffer(payload, np.uint8)
        t_device = int(msg.timestamp * 1e9) if msg.timestamp else 0
        self.raw.put((t_ns, t_device, msg.arbitration_id, msg.is_extended_id, msg.dlc, data))
        self.frames += 1
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
        self.recorder.event("fault", channel=self.channel, error=f"{type(exc).__name__}: {exc}")

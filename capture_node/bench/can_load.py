"""Extra CAN traffic for the capture benchmark: a pre-built list of DBC frames sent on a python-can `virtual` bus.

The virtual bus only crosses threads, so the traffic is generated inside the recorder's process; the frames are
built once (random payloads of the DBC's messages, J1939 source address 0x21) and sent in batches every 10 ms, so
generating them costs little beside receiving, decoding and storing them. The generator's own bus is drained of
the other buses' frames (python-can's virtual bus keeps every frame for every bus on the channel until it is read).
"""

import random
import threading
import time
from pathlib import Path
from typing import cast

import can
import cantools


def dbc_frames(dbc_paths: list[Path], count: int = 2000, seed: int = 0) -> list[can.Message]:
    rng = random.Random(seed)
    databases = [cast(cantools.database.can.Database, cantools.database.load_file(str(path))) for path in dbc_paths]
    messages = [m for database in databases for m in database.messages if m.length <= 8]
    frames = []
    for index in range(count):
        message = messages[index % len(messages)]
        frame_id = (message.frame_id & ~0xFF) | 0x21 if message.is_extended_frame else message.frame_id
        data = bytes(rng.randrange(256) for _ in range(message.length))
        frames.append(can.Message(arbitration_id=frame_id, is_extended_id=message.is_extended_frame, data=data))
    return frames


class CanLoad:
    """Sends `rate_hz` frames per second from `frames` (cycled) on the virtual `channel` until stopped."""

    def __init__(self, channel: str, frames: list[can.Message], rate_hz: float) -> None:
        self.channel = channel
        self.frames = frames
        self.rate_hz = rate_hz
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-can-load", daemon=True)

    def start(self) -> "CanLoad":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        bus = can.Bus(interface="virtual", channel=self.channel, receive_own_messages=False)
        try:
            start = time.monotonic()
            count = len(self.frames)
            while not self._stop.wait(0.01):
                while bus.recv(0) is not None:  # a virtual bus queues every frame on the channel until it is read
                    pass
                due = int((time.monotonic() - start) * self.rate_hz)
                while self.sent < due:
                    bus.send(self.frames[self.sent % count])
                    self.sent += 1
        finally:
            bus.shutdown()

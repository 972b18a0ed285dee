"""The one reconnecting device reader, on a real device stand-in: an OS pipe whose writer end can go away."""

import os
import select
import threading

from excap.core.thread_guard import DeviceFault, ThreadGuard
from excap.drivers.base import DriverCounters
from excap.drivers.reader import DeviceReader, Outage, SourceLost
from tests.support.waiting import wait_for


class PipeDevice:
    """A device read through a pipe: closing the writer is an unplug; `plugged` says whether a reopen works."""

    def __init__(self) -> None:
        self.plugged = threading.Event()
        self.plugged.set()
        self.read_fd: int | None = None
        self.write_fd: int | None = None
        self.data = bytearray()
        self.told: list[tuple[str, object]] = []
        self.fail_on: bytes | None = None
        self._open()

    def _open(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def connect(self) -> bool:
        if not self.plugged.is_set():
            raise OSError("no such device")
        self._open()
        return True

    def read(self) -> None:
        assert self.read_fd is not None
        ready, _, _ = select.select([self.read_fd], [], [], 0.02)
        if not ready:
            return
        chunk = os.read(self.read_fd, 100)
        if not chunk:
            raise SourceLost("end of file")
        if self.fail_on is not None and self.fail_on in chunk:
            raise ValueError("a bug in the device's decoder")
        self.data += chunk

    def release(self) -> None:
        for name in ("read_fd", "write_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def unplug(self) -> None:
        self.plugged.clear()
        fd, self.write_fd = self.write_fd, None
        assert fd is not None
        os.close(fd)

    def send(self, data: bytes) -> None:
        assert self.write_fd is not None
        os.write(self.write_fd, data)

    def reader(self, guard: ThreadGuard, counters: DriverCounters) -> DeviceReader:
        return DeviceReader(
            "pipe-device", guard=guard, counters=counters, connect=self.connect, read=self.read, release=self.release,
            lost=lambda reason: self.told.append(("lost", reason)),
            back=lambda outage: self.told.append(("back", outage)), retry_s=0.02,
            retry_failed=lambda reason: self.told.append(("retry_failed", reason)))


def test_a_lost_device_is_told_once_retried_and_back_with_its_outage():
    device, counters, guard = PipeDevice(), DriverCounters(), ThreadGuard("pipe/one")
    reader = device.reader(guard, counters).start()
    try:
        device.send(b"before")
        wait_for(lambda: device.data == b"before", message="data read")
        device.unplug()
        wait_for(lambda: not reader.connected, message="the loss")
        wait_for(lambda: reader.attempts >= 3, message="three failed reopens")
        assert device.told[0] == ("lost", "end of file")
        assert {kind for kind, _ in device.told[1:]} == {"retry_failed"}  # told once; each retry's failure
        assert all(detail == "OSError: no such device" for _, detail in device.told[1:])
        assert counters.reconnects == 0 and device.read_fd is None  # released at the loss
        device.plugged.set()
        wait_for(lambda: reader.connected, message="the reopen")
        kind, outage = device.told[-1]
        assert kind == "back" and isinstance(outage, Outage)
        assert outage.attempts >= 4 and outage.down_s >= 0.06 and counters.reconnects == 1
        device.send(b" after")
        wait_for(lambda: device.data == b"before after", message="data read after the reopen")
    finally:
        assert reader.stop(5.0)
    assert device.read_fd is None and not guard.failed  # released when stopped; no fault


def test_a_reader_that_starts_without_its_device_retries_until_it_is_there():
    device, counters, guard = PipeDevice(), DriverCounters(), ThreadGuard("pipe/late")
    device.release()
    device.plugged.clear()
    reader = DeviceReader("pipe-late", guard=guard, counters=counters, connect=device.connect, read=device.read,
                          release=device.release, lost=lambda r: device.told.append(("lost", r)),
                          back=lambda o: device.told.append(("back", o)), retry_s=lambda: 0.02, connected=False)
    reader.lose("cannot open")
    reader.start()
    try:
        wait_for(lambda: reader.attempts >= 2, message="retries")
        device.plugged.set()
        wait_for(lambda: reader.connected, message="opened")
        assert [kind for kind, _ in device.told] == ["lost", "back"] and device.told[0][1] == "cannot open"
    finally:
        reader.stop(5.0)


def test_an_unexpected_error_is_the_devices_fault_once_and_ends_the_reader():
    device, counters, guard = PipeDevice(), DriverCounters(), ThreadGuard("pipe/buggy")
    heard: list[DeviceFault] = []
    guard.listen(heard.append)
    device.fail_on = b"!"
    reader = device.reader(guard, counters).start()
    device.send(b"ok!")
    wait_for(lambda: not reader.running, message="the reader to end")
    assert [(f.device, f.error, f.thread) for f in heard] == [
        ("pipe/buggy", "ValueError: a bug in the device's decoder", "pipe-device")]
    assert device.told == [] and device.read_fd is None  # not a loss: a fault; the device is released
    assert reader.stop(5.0)


def test_a_loss_while_stopping_is_not_told():
    device, counters, guard = PipeDevice(), DriverCounters(), ThreadGuard("pipe/stop")
    stopping = threading.Event()
    original = device.read

    def read() -> None:
        if stopping.is_set():
            reader.request_stop()
            raise SourceLost("closed by the stop")
        original()

    reader = DeviceReader("pipe-stop", guard=guard, counters=counters, connect=device.connect, read=read,
                          release=device.release, lost=lambda r: device.told.append(("lost", r)),
                          back=lambda o: device.told.append(("back", o)), retry_s=0.02)
    reader.start()
    stopping.set()
    assert reader.join(5.0)
    assert device.told == [] and device.read_fd is None and reader.connected

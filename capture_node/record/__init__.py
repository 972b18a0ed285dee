"""Recording episodes: bounded never-blocking queues from driver threads into one writer thread (journal, then
HDF5, finished by an atomic rename), episodes started and stopped over drivers that keep running, CAN and camera
capture adapters, the disk-space reserve, and recovery of what a crash left behind.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.record.can_capture import CanCapture
    from excap.record.disk_space import free_bytes, reserve_bytes
    from excap.record.jpeg import JpegEncoder
    from excap.record.publish import publish_atomically
    from excap.record.queues import DropCountingQueue, StreamStatus
    from excap.record.recorder import Recorder, RecorderConfig
    from excap.record.recovery import RecoveryResult, RecoveryStatus, recover_directory, recover_journal
    from excap.record.switch import EpisodeResult, EpisodeSwitch

__all__ = ["CanCapture", "DropCountingQueue", "EpisodeResult", "EpisodeSwitch", "JpegEncoder", "Recorder",
           "RecorderConfig", "RecoveryResult", "RecoveryStatus", "StreamStatus", "free_bytes", "publish_atomically",
           "recover_directory", "recover_journal", "reserve_bytes"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.record.recorder": ["Recorder", "RecorderConfig"],
    "excap.record.publish": ["publish_atomically"],
    "excap.record.queues": ["DropCountingQueue", "StreamStatus"],
    "excap.record.switch": ["EpisodeResult", "EpisodeSwitch"],
    "excap.record.recovery": ["RecoveryResult", "RecoveryStatus", "recover_directory", "recover_journal"],
    "excap.record.can_capture": ["CanCapture"],
    "excap.record.jpeg": ["JpegEncoder"],
    "excap.record.disk_space": ["free_bytes", "reserve_bytes"],
})

"""Datasets for learning frameworks built from a folder of episodes: which episodes an export holds (catalogue
filters, validity, consent, pseudonyms), their frames at a fixed rate with faces blurred and names redacted, and
the LeRobot v3.0 and robomimic exporters (`excap export`). Needs the `export` extra (pyarrow, PyAV).

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.datasets.export.lerobot import ExportResult, LeRobotExportOptions, export_lerobot
    from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
    from excap.datasets.faces import FaceBlurOptions, FaceBlurrer
    from excap.datasets.frames import Frame, SkippedEpisode, iter_frames
    from excap.datasets.redaction import Identities, Scrubber, write_redacted
    from excap.datasets.selection import ExportSelection, SelectedEpisode, select_for_export

__all__ = ["ExportResult", "ExportSelection", "FaceBlurOptions", "FaceBlurrer", "Frame", "Identities",
           "LeRobotExportOptions", "RobomimicExportOptions", "Scrubber", "SelectedEpisode", "SkippedEpisode",
           "export_lerobot", "export_robomimic", "iter_frames", "select_for_export", "write_redacted"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.datasets.selection": ["ExportSelection", "SelectedEpisode", "select_for_export"],
    "excap.datasets.frames": ["Frame", "SkippedEpisode", "iter_frames"],
    "excap.datasets.redaction": ["Identities", "Scrubber", "write_redacted"],
    "excap.datasets.faces": ["FaceBlurOptions", "FaceBlurrer"],
    "excap.datasets.export.lerobot": ["ExportResult", "LeRobotExportOptions", "export_lerobot"],
    "excap.datasets.export.robomimic": ["RobomimicExportOptions", "export_robomimic"],
})

"""Conversion between episodes and other recordings: CAN logs of every format python-can reads or writes
(.log .asc .blf .trc .csv, .mf4 with the `mf4` extra) imported as episodes, and episodes' raw frames exported
as logs (`excap can`); episodes as MCAP files for Foxglove and ROS 2, and ROS 2 bags as episodes (`excap convert`,
the `viewers` extra: mcap_foxglove, mcap_ros2, ros2_bag, docs/mcap.md).

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.convert.can_log_export import export_can_log
    from excap.convert.can_logs import ImportReport, import_can_log, import_can_log_report

__all__ = ["ImportReport", "export_can_log", "import_can_log", "import_can_log_report"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.convert.can_logs": ["ImportReport", "import_can_log", "import_can_log_report"],
    "excap.convert.can_log_export": ["export_can_log"],
})

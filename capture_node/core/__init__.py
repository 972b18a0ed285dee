"""What every layer of excap uses: the one clock of a recording (host CLOCK_MONOTONIC nanoseconds and its
offset to UTC), the exception tree every error comes from (each error names its device, file or key), bounded
YAML loading, private state folders (DIR/.excap), file SHA-256 digests and object-store addresses.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.core.clock import now_ns, utc_iso, utc_offset_ns
    from excap.core.errors import ConfigError, DiskFullError, DriverError, EpisodeError, ExcapError, JournalError
    from excap.core.state_dir import private_dir, private_file
    from excap.core.yaml_files import load_yaml, parse_yaml

__all__ = ["ConfigError", "DiskFullError", "DriverError", "EpisodeError", "ExcapError", "JournalError", "load_yaml",
           "now_ns", "parse_yaml", "private_dir", "private_file", "utc_iso", "utc_offset_ns"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.core.clock": ["now_ns", "utc_iso", "utc_offset_ns"],
    "excap.core.errors": ["ConfigError", "DiskFullError", "DriverError", "EpisodeError", "ExcapError", "JournalError"],
    "excap.core.state_dir": ["private_dir", "private_file"],
    "excap.core.yaml_files": ["load_yaml", "parse_yaml"],
})

"""The excap exception tree: every error names the device, file or key it is about."""


class ExcapError(Exception):
    """Base of every error excap raises on purpose."""


class ConfigError(ExcapError):
    """A configuration file, profile or command-line value is wrong."""


class EpisodeError(ExcapError):
    """An episode file cannot be written, read or validated."""


class JournalError(EpisodeError):
    """A recording journal is missing, foreign or unreadable."""


class DriverError(ExcapError):
    """A device driver failed to open, read or write."""


class DiskFullError(EpisodeError):
    """Free disk space fell to the reserve a recording or a recovery must leave."""


class MissingExtraError(ExcapError):
    """A command needs an optional part of excap (an extra, e.g. `exports`) that is not installed."""


class CatalogueError(ExcapError):
    """An episode catalogue's database cannot be reached or used."""

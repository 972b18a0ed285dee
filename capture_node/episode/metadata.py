"""Episode identity and metadata: the root attributes of every episode file."""

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from excap import __version__

SCHEMA_NAME = "excap.episode"
SCHEMA_VERSION = 1
EPISODE_SUFFIX = ".h5"
RECORDING_DIR = ".recording"
OUTCOMES = ("success", "failure", "aborted", "unlabeled")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_episode_id(machine_id: str, when: datetime | None = None) -> str:
    """Sortable, unique and file-name safe: `20261123T011500Z_exc-sim-01_3f9a2c`."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    machine = _SAFE.sub("-", machine_id).strip("-") or "machine"
    return f"{stamp}_{machine}_{secrets.token_hex(3)}"


@dataclass
class EpisodeMetadata:
    """Who demonstrated what, on which machine, where. Stored as root attributes."""

    machine_kind: str
    machine_model: str
    machine_id: str
    control_pattern: str
    operator_id: str = "anonymous"
    certification: str = ""
    site: str = ""
    task: str = ""
    outcome: str = "unlabeled"
    notes: str = ""
    profile: str = ""
    episode_id: str = ""
    software: str = field(default_factory=lambda: f"excap {__version__}")

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")
        if not self.episode_id:
            self.episode_id = new_episode_id(self.machine_id)

    def to_attrs(self) -> dict[str, Any]:
        return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, **asdict(self)}


@dataclass(frozen=True)
class EpisodePaths:
    """Where an episode lives while recorded and once finished."""

    out_dir: Path
    episode_id: str

    @property
    def recording_dir(self) -> Path:
        return self.out_dir / RECORDING_DIR

    @property
    def journal(self) -> Path:
        return self.recording_dir / f"{self.episode_id}.journal"

    @property
    def partial(self) -> Path:
        return self.recording_dir / f"{self.episode_id}.h5.partial"

    @property
    def final(self) -> Path:
        return self.out_dir / f"{self.episode_id}{EPISODE_SUFFIX}"

"""The station's last episodes (for the page's "Last episodes") and labelling one of them by its id.

Episodes are the finished files of the station's episode folder (not its hidden folders), newest first by file
name (which starts with the UTC start time, to the second); episodes started within the same second are ordered by
their recorded start (`start_t_ns`). A file that cannot be read is listed with its problem instead, unless it is an
exported dataset (excap.catalogue.not_episodes), which is no episode and is left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from excap.catalogue.not_episodes import is_export_file
from excap.core.errors import EpisodeError, ExcapError
from excap.episode.labels import Label, label_episode, latest_label
from excap.episode.reader import EpisodeReader

RECENT = 5
SUFFIXES = (".h5", ".hdf5")
REVIEW_SUFFIX = ".mp4"  # `excap render EPISODE.h5 --out EPISODE.mp4`: the review video beside its episode


@dataclass(frozen=True)
class RecentEpisode:
    episode_id: str
    file: str
    started_at: str
    duration_s: float
    outcome: str  # as recorded
    label: str  # the latest label's outcome, "" if none
    effective_outcome: str
    problem: str = ""
    review_video: str = ""  # the file name of the episode's review video beside it, if there is one

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class EpisodeNotFound(ExcapError):
    """No finished episode with that id in the station's folder."""


def episode_files(out_dir: Path) -> list[Path]:
    """The finished episode files of the folder, newest first."""
    if not out_dir.is_dir():
        return []
    files = [p for p in out_dir.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()]
    files.sort(key=lambda p: p.name, reverse=True)
    counts = Counter(_second(p) for p in files)
    if all(n == 1 for n in counts.values()):
        return files
    return sorted(files, key=lambda p: (_second(p), _start_t_ns(p) if counts[_second(p)] > 1 else 0), reverse=True)


def _second(path: Path) -> str:
    return path.name.split("_", 1)[0]


def _start_t_ns(path: Path) -> int:
    """The recorded start of an episode (0 for a file that cannot be read)."""
    try:
        with EpisodeReader(path) as reader:
            return int(reader.start_t_ns)
    except (EpisodeError, OSError, ValueError):
        return 0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def review_video(path: Path) -> Path | None:
    """The review video of an episode file (`<name>.mp4` beside it), if it has one."""
    video = path.with_suffix(REVIEW_SUFFIX)
    return video if video.is_file() else None


def describe(path: Path) -> RecentEpisode:
    video = review_video(path)
    try:
        with EpisodeReader(path) as reader:
            meta = reader.metadata
            label = latest_label(reader.events())
            outcome = _text(meta.get("outcome", ""))
            return RecentEpisode(_text(meta.get("episode_id", path.stem)), path.name,
                                 _text(meta.get("started_at", "")), float(meta.get("duration_s", 0.0) or 0.0),
                                 outcome, label.outcome if label else "", label.outcome if label else outcome,
                                 review_video=video.name if video else "")
    except (EpisodeError, OSError, ValueError) as exc:
        return RecentEpisode(path.stem, path.name, "", 0.0, "", "", "", problem=str(exc))


def recent_episodes(out_dir: Path, limit: int = RECENT) -> list[RecentEpisode]:
    """The newest `limit` episodes; an exported dataset saved among them is no episode and is left out."""
    listed: list[RecentEpisode] = []
    for path in episode_files(out_dir):
        if len(listed) >= limit:
            break
        episode = describe(path)
        if not (episode.problem and is_export_file(path)):
            listed.append(episode)
    return listed


def find_episode(out_dir: Path, episode_id: str) -> Path:
    """The file of the finished episode `episode_id` in the folder (EpisodeNotFound if there is none)."""
    files = episode_files(out_dir)
    for path in files:
        if path.stem == episode_id:
            return path
    for path in files:
        try:
            with EpisodeReader(path) as reader:
                if _text(reader.metadata.get("episode_id", "")) == episode_id:
                    return path
        except (EpisodeError, OSError):
            continue
    raise EpisodeNotFound(f"no finished episode {episode_id!r} in {out_dir}")


def label_by_id(out_dir: Path, episode_id: str, outcome: str, by: str, source: str = "page") -> tuple[Path, Label]:
    path = find_episode(out_dir, episode_id)
    return path, label_episode(path, outcome, by=by, source=source)


__all__ = ["EpisodeNotFound", "RecentEpisode", "find_episode", "label_by_id", "recent_episodes", "review_video"]

"""Episodes an export reads from elsewhere than a local folder (an object store): `FetchedEpisodes`.

The caller chooses the episodes (`selection`: the records, pseudonyms and counts an export needs; each
`SelectedEpisode.path` is the episode's path under the prefix, not a local file), says how the machine planning
the export reads an episode's layout without copying it (`layout_of`, e.g. ranged reads of its metadata and two
frames per camera), and how a task gets a local copy of its episode on the worker running it (`fetch_of`: a
picklable callable giving a context manager that yields the copy's path and removes it afterwards; it raises an
ExcapError for an object that is missing or whose content differs from its SHA-256).

A task whose episode cannot be fetched is one bad episode: skipped and reported like an episode that cannot be
read (a strict export fails on it).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from excap.core.errors import ExcapError
from excap.datasets.frames import Layout, SkippedEpisode
from excap.datasets.selection import ExportSelection, SelectedEpisode

Fetch = Callable[[], AbstractContextManager[Path]]
Task = TypeVar("Task")
Result = TypeVar("Result")


@dataclass
class FetchedEpisodes:
    selection: ExportSelection
    layout_of: Callable[[Path], Layout]  # an episode's layout from its SelectedEpisode.path
    fetch_of: Callable[[SelectedEpisode], Fetch]


def on_local_copy(task: Task, run: Callable[[Task], Result], skipped: Callable[[SkippedEpisode], Result]) -> Result:
    """`run(task)` on a local copy of the task's episode (its `fetch`, then `source` set to the copy), the copy
    removed afterwards; `skipped(...)` when the episode cannot be fetched. The task is a dataclass with the
    fields `source` (Path), `episode_id` and `fetch` (a Fetch or None: then `run(task)` as it is)."""
    fetch: Fetch | None = getattr(task, "fetch", None)
    if fetch is None:
        return run(task)
    source: Path = getattr(task, "source")  # noqa: B009 (any task dataclass with these fields)
    with ExitStack() as stack:
        try:
            local = stack.enter_context(fetch())
        except ExcapError as exc:
            return skipped(SkippedEpisode(str(getattr(task, "episode_id")), source.name,  # noqa: B009
                                          "cannot be fetched: " + " ".join(str(exc).split())))
        copy: Any = replace(task, source=local, fetch=None)  # type: ignore[type-var]
        return run(copy)


__all__ = ["Fetch", "FetchedEpisodes", "on_local_copy"]

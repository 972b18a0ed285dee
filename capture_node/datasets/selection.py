"""Which episodes an export contains: catalogue filters, validity, operator consent, and pseudonyms.

The records handed to exports are already as a partner may see them (`excap.datasets.redaction`): the
operator replaced by the partner's pseudonym, registered names scrubbed from task, site and machine fields, no
validation problems (they name server paths). Only `path` (the file to read frames from) stays a server path.
Files that cannot be read are skipped with one warning line each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.catalogue.index import EpisodeFilter, EpisodeRecord, Warn, select_episodes, stderr_warning
from excap.core.errors import ExcapError
from excap.core.state_dir import private_file, state_dir
from excap.people.registry import (
    OperatorRegistry,
    key_path,
    load_or_create_key,
    load_registry,
    pseudonym,
    registry_path,
)

DEFAULT_PARTNER = "default"


@dataclass
class SelectedEpisode:
    record: EpisodeRecord  # as the partner may see it: operator_id is the pseudonym, texts scrubbed
    path: Path  # absolute path of the episode file
    operator_pseudonym: str


@dataclass
class ExportSelection:
    partner: str
    episodes: list[SelectedEpisode]
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> episodes left out

    def report(self) -> dict[str, Any]:
        """Counts for the export report: no operator ids, names or paths of left-out episodes."""
        return {"partner": self.partner, "exported_episodes": len(self.episodes),
                "excluded_episodes": dict(sorted(self.excluded.items()))}


def select_for_export(directory: str | Path, selection: EpisodeFilter | None, partner: str = DEFAULT_PARTNER,
                      registry_file: str | Path | None = None, warn: Warn | None = stderr_warning,
                      catalog: str | None = None) -> ExportSelection:
    """Valid matching episodes whose operator consented to sharing, each with its per-partner pseudonym.
    Left out (and counted): invalid files, operators without consent, operators not in the registry; files that
    cannot be read are skipped (and passed to `warn`). `catalog` is the catalogue to select from (default: the folder's
    own, see excap.catalogue.store); only this folder's episodes are selected from a shared one."""
    directory = Path(directory)
    registry = load_registry(private_file(registry_path(directory, registry_file)))
    state_dir(directory)
    return shared_records(select_episodes(directory, selection, warn=warn, catalog=catalog), partner, registry,
                          key_path(directory), lambda record: directory / record.path)


def shared_records(records: Iterable[EpisodeRecord], partner: str, registry: OperatorRegistry, key_file: Path,
                   path_of: Callable[[EpisodeRecord], Path]) -> ExportSelection:
    """The records (already matching the filters) an export may contain, as `select_for_export` chooses them:
    consent from `registry`, pseudonyms keyed by the secret in `key_file` (made when missing), each episode's path
    `path_of(record)`."""
    from excap.datasets.redaction import Identities, Scrubber

    secret = load_or_create_key(private_file(key_file))
    scrub = Scrubber(Identities.of_registry(registry), lambda operator: pseudonym(secret, partner, operator))
    result = ExportSelection(partner, [])
    for record in records:
        reason = None
        if not record.valid:
            reason = "invalid"
        elif registry.get(record.operator_id) is None:
            reason = "operator_not_in_registry"
        elif not registry.consented(record.operator_id):
            reason = "no_consent"
        if reason:
            result.excluded[reason] = result.excluded.get(reason, 0) + 1
            continue
        shared = scrub.record(record)
        result.episodes.append(SelectedEpisode(shared, path_of(record), shared.operator_id))
    return result


def episodes_to_export(directory: str | Path, selection: EpisodeFilter | None, partner: str = DEFAULT_PARTNER,
                       registry_file: str | Path | None = None, catalog: str | None = None) -> ExportSelection:
    """`select_for_export`, refusing (ExcapError) when nothing is left to export."""
    result = select_for_export(directory, selection, partner, registry_file, catalog=catalog)
    if not result.episodes:
        raise ExcapError(f"no episodes to export (left out: {result.excluded or 'none matched the filters'})")
    return result

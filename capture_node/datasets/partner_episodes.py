"""Episodes as a partner receives them: the recorded file with the operator pseudonymised.

An episode downloaded through `excap serve` must carry no more about the operator than an export
does: `operator_id` becomes the partner's pseudonym (the same one as in that partner's exports),
and the free-text fields that may name people (`certification`, `notes`, the details of
`metadata` events) are emptied. The copy is made once per partner and episode, in
DIR/.excap/partner-episodes/<partner>/, and remade when the recorded file changes.
"""

import os
import threading
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from capture_node.datasets.operators import key_path, load_or_create_key, pseudonym

CACHE_DIR = "partner-episodes"
_REDACTED_ATTRS = ("certification", "notes")
_lock = threading.Lock()


def partner_episode(root: Path, partner: str, episode: Path, sha256: str) -> Path:
    """The partner's copy of `episode` (whose content hash is `sha256`), made if missing or stale."""
    folder = root / ".excap" / CACHE_DIR / partner
    target = folder / episode.name
    with _lock:
        if target.exists() and _source_hash(target) == sha256:
            return target
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{episode.name}.part"
        temporary.unlink(missing_ok=True)
        secret = load_or_create_key(key_path(root))
        with h5py.File(episode, "r") as source, h5py.File(temporary, "w") as copy:
            write_redacted(source, copy, lambda operator_id: pseudonym(secret, partner, operator_id))
            copy.attrs["source_sha256"] = sha256
        os.replace(temporary, target)
        return target


def write_redacted(source: h5py.File, copy: h5py.File, pseudonym_of: Callable[[str], str]) -> None:
    """Copy `source` into the new, empty file `copy` without ever writing the redacted values.

    (Editing attributes in place would leave the old bytes in the file's free space.)
    """
    for name, value in source.attrs.items():
        if name == "operator_id":
            operator = value.decode() if isinstance(value, bytes) else str(value)
            value = pseudonym_of(operator) if operator else ""
        elif name in _REDACTED_ATTRS:
            value = ""
        copy.attrs[name] = value
    for name in source:
        if name != "events":
            source.copy(source[name], copy, name)
    if "events" not in source:
        return
    events = source["events"]
    group = copy.create_group("events")
    for name, value in events.attrs.items():
        group.attrs[name] = value
    kinds = events["kind"][()]
    for name, dataset in events.items():
        data = dataset[()]
        if name == "detail":
            data = np.array([b"{}" if kind in (b"metadata", "metadata") else detail
                             for kind, detail in zip(kinds, data, strict=True)], dtype=object)
        group.create_dataset(name, data=data, dtype=dataset.dtype, maxshape=(None,))
        for attr, value in dataset.attrs.items():
            group[name].attrs[attr] = value


def _source_hash(path: Path) -> str:
    try:
        with h5py.File(path, "r") as handle:
            value = handle.attrs.get("source_sha256", "")
    except OSError:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)

"""Episodes as a partner receives them: the recorded file passed through the redaction allow-list.

An episode downloaded through `excap serve` carries no more about people than an export does: see
`excap.datasets.redaction` for what is kept (the operator becomes the partner's pseudonym, free text is
dropped or emptied, registered names are scrubbed from what remains).

Copies are cached in DIR/.excap/partner-episodes/<partner>/ under a name made of the episode's place in the folder
and a key over the partner, the SHA-256 of the exact bytes copied, the operator registry's content and the
redaction policy version: an episode replaced by another of the same name, an edited registry or a changed policy
never serves a stale copy. The bytes are hashed and copied from one open file, so a file replaced meanwhile cannot
mix two versions. Older copies of the same episode are removed when a new one is made.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import h5py

from excap.catalogue.index import UNREADABLE_ERRORS, one_line
from excap.core.errors import EpisodeError
from excap.core.state_dir import FILE_MODE, private_dir, private_file, state_dir
from excap.datasets.redaction import REDACTION_VERSION, Identities, Scrubber, write_redacted
from excap.people.registry import (
    OperatorRegistry,
    key_path,
    load_or_create_key,
    load_registry,
    pseudonym,
    registry_path,
)

CACHE_DIR = "partner-episodes"
_lock = threading.Lock()

HashOfFd = Callable[[int], str]


def _sha256_of_fd(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, 1 << 20, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def registry_of(root: Path) -> tuple[OperatorRegistry | None, str]:
    """The folder's operator registry (None if there is none) and the SHA-256 of its content. A registry that
    exists but cannot be read is an error: without it, names it lists could not be scrubbed."""
    path = registry_path(root)
    if not path.exists():
        return None, ""
    private_file(path)
    return load_registry(path), hashlib.sha256(path.read_bytes()).hexdigest()


def scrubber_for(root: Path, partner: str, registry: OperatorRegistry | None, *operator_ids: str) -> Scrubber:
    """The scrubber for what `partner` receives: the registry's identities and these operators'."""
    state_dir(root)
    secret = load_or_create_key(private_file(key_path(root)))
    identities = Identities.of_registry(registry, *operator_ids)
    return Scrubber(identities, lambda operator: pseudonym(secret, partner, operator))


def partner_episode(root: Path, partner: str, relative: str, hash_of_fd: HashOfFd = _sha256_of_fd) -> Path:
    """The partner's copy of the episode DIR/`relative`, made if there is no current one.
    EpisodeError (one line) if the recorded file cannot be read."""
    root = Path(root)
    source_path = root / relative
    folder = private_dir(private_dir(state_dir(root) / CACHE_DIR) / partner)
    place = hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16]
    try:
        handle = source_path.open("rb")
    except OSError as exc:
        raise EpisodeError(f"{relative}: {one_line(exc)}") from exc
    with handle, _lock:
        registry, registry_sha = registry_of(root)
        source_sha = hash_of_fd(handle.fileno())
        key = hashlib.sha256(f"{REDACTION_VERSION}\0{partner}\0{source_sha}\0{registry_sha}".encode()).hexdigest()
        target = folder / f"{place}-{key[:40]}.h5"
        if target.is_file():
            return target
        temporary = folder / f".{target.name}.part"
        temporary.unlink(missing_ok=True)
        try:
            handle.seek(0)
            with h5py.File(handle, "r") as source:
                operator = source.attrs.get("operator_id", "")
                operator = operator.decode("utf-8", "replace") if isinstance(operator, bytes) else str(operator)
                scrub = scrubber_for(root, partner, registry, operator)
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
                os.close(descriptor)
                with h5py.File(temporary, "w") as copy:
                    write_redacted(source, copy, scrub)
            os.replace(private_file(temporary), target)
        except UNREADABLE_ERRORS as exc:
            temporary.unlink(missing_ok=True)
            raise EpisodeError(f"{relative}: cannot be prepared for delivery: {one_line(exc)}") from exc
        for older in folder.glob(f"{place}-*.h5"):
            if older != target:
                older.unlink(missing_ok=True)
        return target

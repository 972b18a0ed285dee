"""The SHA-256 of a file, read in 1 MiB blocks (catalogue rows, uploads and their verification)."""

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["file_sha256"]

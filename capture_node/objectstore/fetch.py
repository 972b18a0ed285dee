"""Copying an object to a local file, verified against its SHA-256, and reused when the file is already there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from excap.core.digests import file_sha256
from excap.core.errors import ExcapError

CHUNK = 1 << 20


class FetchError(ExcapError):
    """An object could not be copied, or its content differs from its SHA-256."""


def fetch_verified(s3: Any, bucket: str, key: str, sha256: str, target: Path) -> bool:
    """Make `target` a copy of s3://bucket/key whose SHA-256 is `sha256`. A file already there with that digest is
    kept (False); otherwise the object is read into a hidden temporary file beside `target`, hashed as it arrives,
    fsynced and renamed over `target` (True). FetchError if the digest differs (nothing is left behind)."""
    if not sha256:
        raise FetchError(f"s3://{bucket}/{key}: no sha256 metadata, the copy could not be verified")
    if target.is_file() and file_sha256(target) == sha256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.fetch-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with partial.open("wb") as out:
            for chunk in iter(lambda: body.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise FetchError(f"s3://{bucket}/{key}: the copy's SHA-256 {digest.hexdigest()} differs from the "
                             f"object's {sha256}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return True

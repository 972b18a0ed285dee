"""Episodes in the test object store: uploaded as `excap upload` leaves them (the file's SHA-256 in the object's
`sha256` metadata), for the remote index tests and bench/index_remote.py."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def put_episode(s3: Any, bucket: str, key: str, path: Path, with_digest: bool = True) -> str:
    """Upload one file as s3://bucket/key; its SHA-256 (in the metadata unless `with_digest` is False)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": digest} if with_digest else {})
    return digest


def put_folder(s3: Any, bucket: str, prefix: str, folder: Path) -> dict[str, str]:
    """Upload every episode of `folder` under `prefix`; relative path -> SHA-256."""
    return {path.name: put_episode(s3, bucket, f"{prefix}/{path.name}", path) for path in sorted(folder.glob("*.h5"))}

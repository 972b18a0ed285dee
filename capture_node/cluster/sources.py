"""Episodes for tasks: every episode in a folder or under an `s3://BUCKET/PREFIX`, named by its path relative
to it, and where a task's outputs go (a folder or an `s3://` prefix).

A task on any machine opens a source with `local_episode`: a folder's file as it is, an object downloaded to a
temporary file of the worker (checked against the SHA-256 the source names, else the object's
`x-amz-meta-sha256` when it has one), removed afterwards. S3
access uses excap.delivery.s3sync's client and options: credentials, region and profile from the standard AWS
chain of the machine the task runs on, the endpoint from `SyncOptions.endpoint_url` (resolved once on the
machine that starts the work, also from `AWS_ENDPOINT_URL`, and passed to every task).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from excap.core.digests import file_sha256
from excap.core.errors import ConfigError
from excap.core.s3_location import S3Location
from excap.core.scratch import scratch_folder
from excap.delivery.s3sync import (
    EPISODE_SUFFIX,
    EXPORTS_DIR,
    SHA_KEY,
    SyncError,
    SyncOptions,
    _require_bucket,
    _s3_errors,
    client,
    local_files,
)


@dataclass(frozen=True)
class EpisodeSource:
    location: str  # a local path, or s3://BUCKET/KEY
    relative: str  # POSIX path under the folder or prefix the episodes were listed from
    size: int = 0
    sha256: str = ""  # the content expected (e.g. the catalogued digest); empty: the object's sha256 metadata

    @property
    def remote(self) -> bool:
        return self.location.startswith("s3://")


def is_s3(target: str) -> bool:
    return str(target).startswith("s3://")


def _episode(relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return (relative.endswith(EPISODE_SUFFIX) and bool(parts) and parts[0] != EXPORTS_DIR
            and not any(part.startswith(".") for part in parts))


def with_endpoint(options: SyncOptions | None) -> SyncOptions:
    """`options` with the endpoint the tasks must use: the given one, else `AWS_ENDPOINT_URL` of this machine."""
    options = options or SyncOptions(progress=False)
    return replace(options, endpoint_url=options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
                   progress=False)


def list_episodes(target: str, options: SyncOptions | None = None) -> list[EpisodeSource]:
    """The episodes (*.h5, outside hidden folders and exports/) in a folder or under an s3:// prefix, sorted."""
    if not is_s3(target):
        root = Path(target)
        if not root.is_dir():
            raise ConfigError(f"{root}: no such folder")
        return [EpisodeSource(str(path), relative, path.stat().st_size)
                for relative, path in local_files(root) if _episode(relative)]
    location = S3Location.parse(target)
    found = []
    with _s3_errors(target):
        s3 = client(with_endpoint(options))
        _require_bucket(s3, location.bucket)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                             Prefix=location.key("") if location.prefix else "")
        for page in pages:
            for item in page.get("Contents", []):
                relative = location.relative(item["Key"])
                if relative and _episode(relative) and int(item["Size"]) > 0:
                    found.append(EpisodeSource(f"s3://{location.bucket}/{item['Key']}", relative, int(item["Size"])))
    return sorted(found, key=lambda source: source.relative)


@contextmanager
def local_episode(source: EpisodeSource, options: SyncOptions | None = None) -> Iterator[Path]:
    """A local file with the episode's content for the duration of the block (a download is removed after, or by a
    later download on that machine if the process is killed: excap.core.scratch). A
    download is checked against `source.sha256`, else the object's sha256 metadata (SyncError if it differs)."""
    if not source.remote:
        yield Path(source.location)
        return
    location = S3Location.parse(source.location)
    with scratch_folder("excap-episode-") as folder:
        path = folder / PurePosixPath(location.prefix).name
        with _s3_errors(source.location):
            s3 = client(options or SyncOptions(progress=False))
            head = s3.head_object(Bucket=location.bucket, Key=location.prefix)
            s3.download_file(location.bucket, location.prefix, str(path))
        expected = source.sha256 or head.get("Metadata", {}).get(SHA_KEY, "")
        if expected and file_sha256(path) != expected:
            what = "the SHA-256 it was selected with" if source.sha256 else f"its {SHA_KEY} metadata"
            raise SyncError(f"{source.location}: downloaded content differs from {what}")
        yield path


@dataclass(frozen=True)
class OutputTarget:
    """Where a task writes a file: `put(relative, local_file)` copies it into a folder or uploads it under an
    s3:// prefix (with its SHA-256 in the object's metadata, as excap push does)."""

    location: str
    options: SyncOptions | None = None

    @classmethod
    def of(cls, target: str, options: SyncOptions | None = None) -> OutputTarget:
        if is_s3(target):
            S3Location.parse(target)
            return cls(target, with_endpoint(options))
        return cls(str(Path(target)), None)

    def put(self, relative: str, path: Path) -> str:
        """Stores `path` as `relative` under the target; the address it got."""
        if any(part in ("", ".", "..") for part in relative.split("/")) or relative.startswith("/"):
            raise ConfigError(f"{relative!r}: not a relative path inside the output")
        if not is_s3(self.location):
            target = Path(self.location) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            shutil.copyfile(path, partial)
            os.replace(partial, target)
            return str(target)
        location = S3Location.parse(self.location)
        key = location.key(relative)
        sha = file_sha256(path)
        with _s3_errors(self.location):
            s3 = client(self.options or SyncOptions(progress=False))
            s3.upload_file(str(path), location.bucket, key,
                           ExtraArgs={"Metadata": {SHA_KEY: sha}, "ContentType": "application/octet-stream"})
            stored = s3.head_object(Bucket=location.bucket, Key=key).get("Metadata", {}).get(SHA_KEY, "")
        if stored != sha:
            raise SyncError(f"s3://{location.bucket}/{key}: checksum differs after upload")
        return f"s3://{location.bucket}/{key}"


__all__ = ["EpisodeSource", "OutputTarget", "is_s3", "list_episodes", "local_episode", "with_endpoint"]

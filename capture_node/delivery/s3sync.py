"""`excap push` / `excap pull`: episodes (*.h5) and exports (exports/**) to and from S3, verified by SHA-256.

Each object carries the SHA-256 of its content in its metadata (`x-amz-meta-sha256`). Push skips objects that
already have the local file's size and checksum, uploads the rest (multipart above a threshold) and reads the
object's metadata back to check it. Pull skips local files that already have the object's checksum, downloads
the rest into a temporary file next to the target, hashes it and only renames it into place when the checksum
matches. Nothing is ever deleted on either side. Credentials, region and profile come from the standard AWS
environment variables and config files; `endpoint_url` points at any S3-compatible server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from excap.core.digests import file_sha256
from excap.core.errors import ConfigError, ExcapError
from excap.core.s3_location import S3Location

EXPORTS_DIR = "exports"
EPISODE_SUFFIX = ".h5"
SHA_KEY = "sha256"
MiB = 1 << 20


class SyncError(ExcapError):
    """A transfer failed or an object does not match its checksum."""


@dataclass
class SyncOptions:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 4
    progress: bool = True


@dataclass
class SyncReport:
    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0

    def text(self, verb: str) -> str:
        return (f"{len(self.transferred)} {verb} ({self.bytes / 1e6:.1f} MB), "
                f"{len(self.skipped)} already up to date")


def selected(relative: str) -> bool:
    """Whether a relative path is synced: episodes anywhere outside hidden folders, and all of exports/."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p.startswith(".") for p in parts):
        return False
    return parts[0] == EXPORTS_DIR or relative.endswith(EPISODE_SUFFIX)


def local_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of the files to push, sorted; symlinks are not followed."""
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(current) / name
            relative = path.relative_to(root).as_posix()
            if selected(relative) and path.is_file() and not path.is_symlink():
                yield relative, path


def safe_relative(relative: str) -> bool:
    """A key's relative part that stays inside the target folder: no '..', '.', empty or absolute parts."""
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        return False
    return all(part not in ("", ".", "..") for part in relative.split("/"))


@contextmanager
def _s3_errors(url: str) -> Iterator[None]:
    """Turns botocore's exceptions (no credentials, no bucket, endpoint down, ...) into one-line SyncErrors."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        raise SyncError(f"{url}: {exc}") from exc


def client(options: SyncOptions) -> Any:
    import boto3

    session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
    return session.client("s3", endpoint_url=options.endpoint_url)


def _transfer_config(options: SyncOptions) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=options.multipart_threshold,
                          multipart_chunksize=options.multipart_chunksize, max_concurrency=options.max_concurrency)


def _require_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket", "NotFound", "403", "AccessDenied"):
            raise SyncError(f"s3://{bucket}: no such bucket, or no access to it ({code})") from exc
        raise


def _remote(s3: Any, bucket: str, key: str) -> tuple[int, str] | None:
    """(size, stored sha256) of an object, or None if it does not exist."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise SyncError(f"s3://{bucket}/{key}: {exc}") from exc
    return int(head["ContentLength"]), head.get("Metadata", {}).get(SHA_KEY, "")


class _Progress:
    """A tqdm byte bar over a whole sync, fed by boto3's transfer callbacks (which may run on several threads)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not enabled,
                        leave=True)

    def __call__(self, count: int) -> None:
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


def push(root: Path, target: str, options: SyncOptions | None = None,
         log: Callable[[str], None] | None = None) -> SyncReport:
    """Uploads the episodes and exports of `root` that are missing or differ under s3://bucket/prefix."""
    with _s3_errors(target):
        return _push(Path(root), target, options or SyncOptions(), log)


def _push(root: Path, target: str, options: SyncOptions, log: Callable[[str], None] | None) -> SyncReport:
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    location = S3Location.parse(target)
    s3 = client(options)
    _require_bucket(s3, location.bucket)
    config = _transfer_config(options)
    plan: list[tuple[str, Path, str]] = []
    report = SyncReport()
    for relative, path in local_files(root):
        sha = file_sha256(path)
        remote = _remote(s3, location.bucket, location.key(relative))
        if remote == (path.stat().st_size, sha):
            report.skipped.append(relative)
        else:
            plan.append((relative, path, sha))
    progress = _Progress(sum(p.stat().st_size for _, p, _ in plan), "push", options.progress)
    try:
        for relative, path, sha in plan:
            key = location.key(relative)
            size = path.stat().st_size
            s3.upload_file(str(path), location.bucket, key, Config=config, Callback=progress,
                           ExtraArgs={"Metadata": {SHA_KEY: sha}, "ContentType": "application/octet-stream"})
            if _remote(s3, location.bucket, key) != (size, sha) or file_sha256(path) != sha:
                raise SyncError(f"s3://{location.bucket}/{key}: size or checksum differs after upload "
                                "(the local file changed, or the upload was damaged)")
            report.transferred.append(relative)
            report.bytes += size
            if log:
                log(f"uploaded {relative}")
    finally:
        progress.close()
    return report


def remote_objects(s3: Any, location: S3Location) -> Iterator[tuple[str, str, int]]:
    """(relative path, key, size) of the objects under the prefix that pull would write."""
    listing = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                            Prefix=location.key("") if location.prefix else "")
    for page in listing:
        for item in page.get("Contents", []):
            relative = location.relative(item["Key"])
            if relative is None or item["Key"].endswith("/"):
                continue
            if not safe_relative(relative):
                raise SyncError(f"s3://{location.bucket}/{item['Key']}: refusing a key that leaves the target folder")
            if selected(relative):
                yield relative, item["Key"], int(item["Size"])


def pull(source: str, root: Path, options: SyncOptions | None = None,
         log: Callable[[str], None] | None = None) -> SyncReport:
    """Downloads the episodes and exports under s3://bucket/prefix that are missing or differ in `root`."""
    with _s3_errors(source):
        return _pull(source, Path(root), options or SyncOptions(), log)


def _pull(source: str, root: Path, options: SyncOptions, log: Callable[[str], None] | None) -> SyncReport:
    location = S3Location.parse(source)
    s3 = client(options)
    _require_bucket(s3, location.bucket)
    config = _transfer_config(options)
    report = SyncReport()
    plan: list[tuple[str, str, int, str]] = []
    for relative, key, size in remote_objects(s3, location):
        remote = _remote(s3, location.bucket, key)
        if remote is None:
            continue
        sha = remote[1]
        if not sha:
            raise SyncError(f"s3://{location.bucket}/{key}: no {SHA_KEY} metadata, cannot verify it (push it with "
                            "excap push)")
        target = root / relative
        if target.is_file() and target.stat().st_size == size and file_sha256(target) == sha:
            report.skipped.append(relative)
        else:
            plan.append((relative, key, size, sha))
    progress = _Progress(sum(size for _, _, size, _ in plan), "pull", options.progress)
    try:
        for relative, key, size, sha in plan:
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            try:
                s3.download_file(location.bucket, key, str(partial), Config=config, Callback=progress)
                got = file_sha256(partial)
                if got != sha:
                    raise SyncError(f"s3://{location.bucket}/{key}: downloaded SHA-256 {got} differs from the "
                                    f"object's {sha}")
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            report.transferred.append(relative)
            report.bytes += size
            if log:
                log(f"downloaded {relative}")
    finally:
        progress.close()
    return report

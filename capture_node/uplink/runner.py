"""One uplink pass over a folder (`excap upload DIR s3://bucket/prefix --once`), and the loop that repeats it.

A pass lists the final episodes, validates and hashes the new ones, uploads (or resumes) each one not yet
verified, then applies the retention policy. A failing episode does not stop the pass: its error is kept in the
uploader's state file (shown by `--status` and the station page) and the next pass tries again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.digests import file_sha256
from excap.core.errors import ConfigError, ExcapError
from excap.core.s3_location import S3Location
from excap.uplink.queue import Candidate, candidates, validation_problem
from excap.uplink.ratelimit import TokenBucket
from excap.uplink.retention import RetentionPolicy, apply_retention
from excap.uplink.state import (
    EpisodeState,
    load_episode,
    load_uploader,
    record_error,
    save_episode,
    save_uploader,
    state_dir,
)
from excap.uplink.transfer import EpisodeResult, EpisodeUpload, TransferOptions, client, plain


@dataclass
class UplinkOptions:
    target: str
    transfer: TransferOptions = field(default_factory=TransferOptions)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    max_rate: float | None = None  # bytes per second read for upload


@dataclass
class PassReport:
    uploaded: list[EpisodeResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def parts_sent(self) -> int:
        return sum(result.parts_sent for result in self.uploaded)

    def to_json(self) -> dict[str, Any]:
        return {"uploaded": [vars(r) for r in self.uploaded], "failed": [list(f) for f in self.failed],
                "invalid": [list(i) for i in self.invalid], "deleted": self.deleted, "parts_sent": self.parts_sent}

    def text(self) -> str:
        sent = [r for r in self.uploaded if not r.already_there]
        return (f"{len(sent)} uploaded ({sum(r.bytes_sent for r in sent) / 1e6:.1f} MB in {self.parts_sent} parts), "
                f"{len(self.failed)} failed, {len(self.invalid)} invalid, {len(self.deleted)} deleted locally")


def _episode_state(s3: Any, root: Path, candidate: Candidate, target: S3Location,
                   options: UplinkOptions) -> EpisodeState:
    """The saved state when it still describes this file and target, else a fresh one (validated, hashed); the
    multipart upload of an outdated state is aborted (best effort: the store's lifecycle rule is the fallback)."""
    state = load_episode(root, candidate.relative)
    key = target.key(candidate.relative)
    if state is not None and state.matches(candidate.size, candidate.mtime_ns) and \
            (state.bucket, state.key) == (target.bucket, key):
        return state
    if state is not None and state.upload_id and state.bucket and state.key:
        with contextlib.suppress(Exception):  # gone already, or the store is unreachable now
            s3.abort_multipart_upload(Bucket=state.bucket, Key=state.key, UploadId=state.upload_id)
    fresh = EpisodeState(candidate.relative, candidate.size, candidate.mtime_ns, bucket=target.bucket, key=key,
                         part_size=options.transfer.part_size)
    fresh.problem = validation_problem(candidate.path)
    if not fresh.problem:
        fresh.sha256 = file_sha256(candidate.path)
    save_episode(root, fresh)
    return fresh


def run_pass(root: Path, options: UplinkOptions, log: Callable[[str], None] = lambda _: None) -> PassReport:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    target = S3Location.parse(options.target)
    s3 = client(options.transfer)
    rate = TokenBucket(options.max_rate) if options.max_rate else None
    state_dir(root).mkdir(parents=True, exist_ok=True)
    report = PassReport()
    states: list[EpisodeState] = []
    for candidate in candidates(root):
        try:
            state = _episode_state(s3, root, candidate, target, options)
        except OSError as exc:  # the file went away or cannot be read: next pass
            report.failed.append((candidate.relative, f"{candidate.path}: {exc}"))
            continue
        states.append(state)
        if state.problem:
            report.invalid.append((state.relative, state.problem))
            continue
        if state.verified_at is not None:
            continue
        try:
            result = EpisodeUpload(s3, root, candidate.path, state, options.transfer, rate, log).run()
        except (ExcapError, OSError) as exc:
            report.failed.append((state.relative, str(exc)))
        except Exception as exc:  # botocore's errors once retries are exhausted
            report.failed.append((state.relative, f"s3://{state.bucket}/{state.key}: {plain(exc)}"))
        else:
            report.uploaded.append(result)
            log(f"uploaded {state.relative}" + (" (already there)" if result.already_there else ""))
    for relative, message in report.failed:
        log(f"failed {relative}: {message}")
        record_error(root, message)

    def remote_matches(state: EpisodeState) -> bool:
        try:
            head = s3.head_object(Bucket=state.bucket, Key=state.key)
        except Exception:
            return False
        return (int(head["ContentLength"]), head.get("Metadata", {}).get("sha256")) == (state.size, state.sha256)

    report.deleted = apply_retention(root, states, options.retention, remote_matches)
    for relative in report.deleted:
        log(f"deleted {relative} (remote copy verified)")
    uploader = load_uploader(root)
    uploader.last_pass_at, uploader.target = time.time(), options.target
    if not report.failed:
        uploader.last_error, uploader.last_error_at = "", None
    save_uploader(root, uploader)
    return report


def run_loop(root: Path, options: UplinkOptions, interval_s: float, stop: threading.Event,
             log: Callable[[str], None] = lambda _: None) -> None:
    """Passes every `interval_s` until `stop` is set (new episodes are picked up by the next pass)."""
    while not stop.is_set():
        run_pass(root, options, log)
        stop.wait(interval_s)

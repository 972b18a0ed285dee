"""One episode's resumable multipart upload, verified end to end by SHA-256 (boto3 low-level calls).

The object is created by CreateMultipartUpload with the whole file's SHA-256 in its metadata (`sha256`, read
back as `x-amz-meta-sha256`); each part's ETag and SHA-256 go into the episode's state file as soon as the store
acknowledges it. A later run lists the upload's parts and sends only the ones the store does not hold (a part
the store holds but the state file missed, because the uploader was killed in between, is adopted when its
ETag equals the local part's MD5). `parallel` parts are in flight at once. A file whose size or modification
time changed during the upload is not completed. The object appears only when the upload completes; it is then
checked by a HEAD (size and SHA-256) and, with `verify="full"`, by reading it back and hashing it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from excap.core.errors import ExcapError
from excap.uplink.ratelimit import TokenBucket
from excap.uplink.retry import RetryPolicy, with_retries
from excap.uplink.state import EpisodeState, PartRecord, save_episode

SHA_KEY = "sha256"
MiB = 1 << 20
READ_BLOCK = 256 * 1024


class UploadError(ExcapError):
    """An episode could not be uploaded or its remote copy does not match."""


@dataclass
class TransferOptions:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    part_size: int = 8 * MiB
    parallel: int = 4  # parts in flight at once
    verify: str = "head"  # "head": size and SHA-256 metadata; "full": also read the object back and hash it
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0


@dataclass
class EpisodeResult:
    relative: str
    parts_sent: int = 0
    parts_adopted: int = 0  # held by the store from a killed run, not sent again
    bytes_sent: int = 0
    already_there: bool = False


def client(options: TransferOptions) -> Any:
    """An S3 client from the standard boto3 configuration chain plus `endpoint_url`; retries are ours."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
    config = Config(connect_timeout=options.connect_timeout_s, read_timeout=options.read_timeout_s,
                    retries={"max_attempts": 1, "mode": "standard"})
    return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def _missing(exc: BaseException, *codes: str) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")) in codes


class EpisodeUpload:
    """Uploads one episode described by `state` (its file is `path`), saving progress in `root`'s state dir."""

    def __init__(self, s3: Any, root: Path, path: Path, state: EpisodeState, options: TransferOptions,
                 bucket_rate: TokenBucket | None = None,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.s3, self.root, self.path, self.state = s3, root, path, state
        self.options, self.rate, self.log = options, bucket_rate, log
        self.result = EpisodeResult(state.relative)
        self._lock = threading.Lock()

    def call(self, what: str, function: Callable[..., Any], **kwargs: Any) -> Any:
        def on_retry(exc: BaseException, delay: float) -> None:
            from excap.uplink.state import record_error

            record_error(self.root, f"{what} s3://{self.state.bucket}/{self.state.key}: {plain(exc)}; "
                                    f"retrying in {delay:.1f} s")
            self.log(f"retry {what} {self.state.relative} in {delay:.1f} s: {plain(exc)}")

        return with_retries(lambda: function(**kwargs), self.options.retry, on_retry)

    def remote(self) -> tuple[int, str] | None:
        """(size, stored SHA-256) of the object, None when there is none."""
        try:
            head = self.call("HEAD", self.s3.head_object, Bucket=self.state.bucket, Key=self.state.key)
        except Exception as exc:
            if _missing(exc, "404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"]), str(head.get("Metadata", {}).get(SHA_KEY, ""))

    def run(self) -> EpisodeResult:
        state = self.state
        if self.remote() == (state.size, state.sha256):
            self.result.already_there = True
        else:
            self._multipart()
        self.verify()
        return self.result

    def _multipart(self) -> None:
        state = self.state
        server_parts = self._resume()
        count = max(1, -(-state.size // state.part_size))
        todo = [n for n in range(1, count + 1) if not (n in state.parts and state.parts[n].size == self._length(n))]
        with self.path.open("rb") as handle, ThreadPoolExecutor(max(1, self.options.parallel)) as pool:
            futures = [pool.submit(self._part, handle.fileno(), number, count, server_parts.get(number))
                       for number in todo]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        info = self.path.stat()
        if not state.matches(info.st_size, info.st_mtime_ns):
            raise UploadError(f"{self.path}: the file changed during its upload; it is uploaded again next pass")
        parts = [{"PartNumber": n, "ETag": f'"{state.parts[n].etag}"'} for n in range(1, count + 1)]
        self.call("complete", self.s3.complete_multipart_upload, Bucket=state.bucket, Key=state.key,
                  UploadId=state.upload_id, MultipartUpload={"Parts": parts})

    def _length(self, number: int) -> int:
        return min(self.state.part_size, self.state.size - (number - 1) * self.state.part_size)

    def _part(self, fd: int, number: int, count: int, held: tuple[str, int] | None) -> None:
        """Reads, hashes and sends one part (unless the store already holds exactly these bytes), then saves it."""
        state = self.state
        length = self._length(number)
        data = self._read(fd, (number - 1) * state.part_size, length)
        sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()
        if held == (md5, length):  # sent by a run killed before it saved the state
            self._done(number, PartRecord(md5, sha, length), sent=False)
            return
        answer = self.call("upload part", self.s3.upload_part, Bucket=state.bucket, Key=state.key,
                           UploadId=state.upload_id, PartNumber=number, Body=data,
                           ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode())
        etag = str(answer["ETag"]).strip('"')
        if etag != md5:
            raise UploadError(f"s3://{state.bucket}/{state.key}: part {number} ETag {etag} differs from its MD5 {md5}")
        self._done(number, PartRecord(etag, sha, length), sent=True)
        self.log(f"part {number}/{count} of {state.relative} sent")

    def _done(self, number: int, record: PartRecord, sent: bool) -> None:
        with self._lock:
            self.state.parts[number] = record
            save_episode(self.root, self.state)
            if sent:
                self.result.parts_sent += 1
                self.result.bytes_sent += record.size
            else:
                self.result.parts_adopted += 1

    def _resume(self) -> dict[int, tuple[str, int]]:
        """The parts the store holds for the saved upload id ({} and a new upload when there is none)."""
        state = self.state
        if state.upload_id:
            try:
                held = self._list_parts()
            except Exception as exc:
                if not _missing(exc, "NoSuchUpload", "404", "NotFound"):
                    raise
                self.log(f"upload of {state.relative} expired on the store; starting it again")
            else:
                state.parts = {n: p for n, p in state.parts.items() if held.get(n) == (p.etag, p.size)}
                save_episode(self.root, state)
                return held
        created = self.call("create upload", self.s3.create_multipart_upload, Bucket=state.bucket, Key=state.key,
                            Metadata={SHA_KEY: state.sha256}, ContentType="application/x-hdf5")
        state.upload_id, state.parts = str(created["UploadId"]), {}
        save_episode(self.root, state)
        return {}

    def _list_parts(self) -> dict[int, tuple[str, int]]:
        held: dict[int, tuple[str, int]] = {}
        marker = 0
        while True:
            page = self.call("list parts", self.s3.list_parts, Bucket=self.state.bucket, Key=self.state.key,
                             UploadId=self.state.upload_id, PartNumberMarker=marker)
            for part in page.get("Parts", []):
                held[int(part["PartNumber"])] = (str(part["ETag"]).strip('"'), int(part["Size"]))
            if not page.get("IsTruncated"):
                return held
            marker = int(page["NextPartNumberMarker"])

    def _read(self, fd: int, offset: int, length: int) -> bytes:
        chunks = []
        done = 0
        while done < length:
            block = os.pread(fd, min(READ_BLOCK, length - done), offset + done)
            if not block:
                raise UploadError(f"{self.path}: the file shrank during its upload")
            if self.rate is not None:
                self.rate.take(len(block))
            chunks.append(block)
            done += len(block)
        return b"".join(chunks)

    def verify(self) -> None:
        """HEAD: size and SHA-256 metadata; with verify="full" also the object's content, read back and hashed."""
        state = self.state
        remote = self.remote()
        if remote != (state.size, state.sha256):
            raise UploadError(f"s3://{state.bucket}/{state.key}: remote copy {remote} differs from the file's size "
                              f"and SHA-256 ({state.size}, {state.sha256})")
        if self.options.verify == "full":
            digest = hashlib.sha256()
            body = self.call("read back", self.s3.get_object, Bucket=state.bucket, Key=state.key)["Body"]
            for block in iter(lambda: body.read(MiB), b""):
                digest.update(block)
            if digest.hexdigest() != state.sha256:
                raise UploadError(f"s3://{state.bucket}/{state.key}: read-back SHA-256 {digest.hexdigest()} differs "
                                  f"from the file's {state.sha256}")
        state.verified_at = time.time()
        state.upload_id, state.parts = "", {}
        save_episode(self.root, state)


def plain(exc: BaseException) -> str:
    """One line saying what went wrong, without botocore's long preambles where a short word does."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import EndpointConnectionError

    if isinstance(exc, EndpointConnectionError):
        url = urlparse(str(exc.kwargs.get("endpoint_url", "")))
        return f"cannot reach the object store at {url.scheme}://{url.netloc} (connection refused or down)"
    if isinstance(exc, BotoConnectionError):
        return f"the connection to the object store broke ({type(exc).__name__})"
    return " ".join(str(exc).split())

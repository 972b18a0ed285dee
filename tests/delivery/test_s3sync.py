"""push / pull against a real S3-compatible server (SeaweedFS on loopback, tests/support/seaweedfs.py); a faulty
store is a loopback proxy in front of it that damages what it stores."""

import argparse
import hashlib
import http.client
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import boto3
import pytest
from botocore.exceptions import ClientError

from excap.cli.delivery import add_pull_parser, add_push_parser, cmd_pull, cmd_push
from excap.core.errors import ConfigError
from excap.delivery.s3sync import MiB, S3Location, SyncError, SyncOptions, pull, push, safe_relative, selected
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.seaweedfs import SeaweedFS

BUCKET = "excap-test"


@pytest.fixture
def s3_endpoint(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.endpoint


@pytest.fixture
def s3(seaweedfs: SeaweedFS, s3_env: dict[str, str]) -> Iterator[object]:
    """Credentials only from the environment (as a user would set them); a fresh bucket per test."""
    client = boto3.client("s3", endpoint_url=seaweedfs.endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def options(endpoint: str, **overrides: object) -> SyncOptions:
    values: dict[object, object] = {"endpoint_url": endpoint, "progress": False, "multipart_threshold": 5 * MiB,
                                    "multipart_chunksize": 5 * MiB, **overrides}
    return SyncOptions(**values)


def site(root: Path) -> dict[str, bytes]:
    files = {
        "20260101T000000Z_m1_aaaaaa.h5": b"episode-a" * 1000,
        "day2/20260102T000000Z_m1_bbbbbb.h5": b"episode-b" * 1000,
        "exports/dig-v1/meta/info.json": b'{"total_episodes": 2}',
        "exports/dig-v1/data/chunk-000/big.bin": bytes(range(256)) * (12 * 4096 + 7),  # ~12 MiB: multipart
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / ".excap").mkdir()
    (root / ".excap" / "partners.sqlite").write_bytes(b"private")
    (root / ".recording").mkdir()
    (root / ".recording" / "partial.h5").write_bytes(b"partial")
    (root / "notes.txt").write_text("not an episode")
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_then_pull_round_trip_with_checksums(s3: object, s3_endpoint: str, tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    files = site(source)
    report = push(source, f"s3://{BUCKET}/fleet/site-1", options(s3_endpoint))
    assert sorted(report.transferred) == sorted(files) and report.bytes == sum(map(len, files.values()))
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == sorted(f"fleet/site-1/{name}" for name in files)
    for name, data in files.items():
        head = s3.head_object(Bucket=BUCKET, Key=f"fleet/site-1/{name}")
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    big = s3.head_object(Bucket=BUCKET, Key="fleet/site-1/exports/dig-v1/data/chunk-000/big.bin")
    assert big["ETag"].strip('"').endswith("-3")  # uploaded in 3 parts

    again = push(source, f"s3://{BUCKET}/fleet/site-1", options(s3_endpoint))
    assert again.transferred == [] and sorted(again.skipped) == sorted(files)

    pulled = pull(f"s3://{BUCKET}/fleet/site-1/", target, options(s3_endpoint))
    assert sorted(pulled.transferred) == sorted(files)
    assert tree(target) == files
    assert pull(f"s3://{BUCKET}/fleet/site-1", target, options(s3_endpoint)).transferred == []


def test_changed_files_are_transferred_again(s3: object, s3_endpoint: str, tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    site(source)
    push(source, f"s3://{BUCKET}/p", options(s3_endpoint))
    pull(f"s3://{BUCKET}/p", target, options(s3_endpoint))
    (source / "exports/dig-v1/meta/info.json").write_bytes(b'{"total_episodes": 3}')
    assert push(source, f"s3://{BUCKET}/p", options(s3_endpoint)).transferred == ["exports/dig-v1/meta/info.json"]
    (target / "20260101T000000Z_m1_aaaaaa.h5").write_bytes(b"damaged locally")
    again = pull(f"s3://{BUCKET}/p", target, options(s3_endpoint))
    assert sorted(again.transferred) == ["20260101T000000Z_m1_aaaaaa.h5", "exports/dig-v1/meta/info.json"]
    assert tree(target) == {k: v for k, v in tree(source).items() if selected(k)}


def test_pull_refuses_objects_whose_content_does_not_match(s3: object, s3_endpoint: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="p/bad.h5", Body=b"tampered", Metadata={"sha256": "0" * 64})
    target = tmp_path / "target"
    with pytest.raises(SyncError, match="differs"):
        pull(f"s3://{BUCKET}/p", target, options(s3_endpoint))
    assert not (target / "bad.h5").exists() and not any(target.rglob("*.part"))
    s3.put_object(Bucket=BUCKET, Key="p/bad.h5", Body=b"no checksum")
    with pytest.raises(SyncError, match="no sha256"):
        pull(f"s3://{BUCKET}/p", target, options(s3_endpoint))


def test_pull_refuses_keys_that_leave_the_folder(s3: object, s3_endpoint: str, tmp_path: Path) -> None:
    """The store refuses such keys itself; pull refuses them too, should a store hold them."""
    for relative in ("../../escape.h5", "..\\escape.h5", "./escape.h5", "a/../../escape.h5"):
        assert not safe_relative(relative)
        with pytest.raises(ClientError):
            s3.put_object(Bucket=BUCKET, Key=f"p/{relative}", Body=b"x",
                          Metadata={"sha256": hashlib.sha256(b"x").hexdigest()})
    pull(f"s3://{BUCKET}/p", tmp_path / "target", options(s3_endpoint))
    assert not (tmp_path / "escape.h5").exists() and not any((tmp_path / "target").rglob("*"))


def test_errors_are_one_line_sync_errors(s3: object, s3_endpoint: str, tmp_path: Path) -> None:
    site(tmp_path)
    for run in (lambda: push(tmp_path, "s3://no-such-bucket/x", options(s3_endpoint)),
                lambda: pull("s3://no-such-bucket/x", tmp_path / "target", options(s3_endpoint))):
        with pytest.raises(SyncError, match="s3://no-such-bucket: no such bucket"):
            run()
    with pytest.raises(ConfigError):
        S3Location.parse("http://bucket/x")
    assert S3Location.parse("s3://b") == S3Location("b", "")
    assert S3Location.parse("s3://b/a/b/").key("c.h5") == "a/b/c.h5"


def test_push_and_pull_commands(s3: object, s3_endpoint: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="excap")
    commands = parser.add_subparsers(dest="command", required=True)
    add_push_parser(commands)
    add_pull_parser(commands)
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    files = site(source)
    assert cmd_push(parser.parse_args(["push", str(source), f"s3://{BUCKET}/cli", "--endpoint-url", s3_endpoint,
                                       "--multipart-threshold-mb", "5", "--no-progress"])) == 0
    assert f"{len(files)} uploaded" in capsys.readouterr().out
    assert cmd_pull(parser.parse_args(["pull", f"s3://{BUCKET}/cli", str(target), "--endpoint-url", s3_endpoint,
                                       "--no-progress"])) == 0
    assert f"{len(files)} downloaded" in capsys.readouterr().out
    assert tree(target) == files


class DamagingStore:
    """A loopback HTTP proxy in front of the S3 server that behaves like a faulty store: with `drop_metadata` it
    loses the user metadata of uploads (the checksum: it stores the object again without it right after the
    upload, as requests are signed), with `truncate` it cuts every uploaded object short right after
    acknowledging the upload; otherwise it passes everything through."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.drop_metadata = False
        self.truncate = False
        self.damaged: list[str] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                connection = http.client.HTTPConnection(store.upstream.hostname, store.upstream.port, timeout=30)
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                connection.close()
                is_object_upload = self.command == "PUT" and self.path.count("/") >= 2 and "?" not in self.path
                damaging = store.truncate or store.drop_metadata
                if damaging and is_object_upload and answer.status == 200 and len(body) > 10:
                    bucket, key = self.path.lstrip("/").split("/", 1)
                    damaged = boto3.client("s3", endpoint_url=store.upstream.geturl())
                    metadata = {k[len("x-amz-meta-"):]: v for k, v in self.headers.items()
                                if k.lower().startswith("x-amz-meta-") and not store.drop_metadata}
                    stored = damaged.get_object(Bucket=bucket, Key=unquote(key))["Body"].read()
                    damaged.put_object(Bucket=bucket, Key=unquote(key), Metadata=metadata,
                                       Body=stored[:-10] if store.truncate else stored)
                    if store.truncate:
                        store.damaged.append(unquote(key))
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(name, value)
                length = answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def damaging_store(s3_endpoint: str) -> Iterator[DamagingStore]:
    store = DamagingStore(s3_endpoint)
    yield store
    store.close()


def excap_push(source: Path, target: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command("push", str(source), target, "--endpoint-url", endpoint, "--no-progress"),
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_push_reports_a_store_that_loses_the_checksum_or_the_bytes(s3: object, damaging_store: DamagingStore,
                                                                   tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    site(source)
    passed = excap_push(source, f"s3://{BUCKET}/through", damaging_store.url)
    assert passed.returncode == 0 and "4 uploaded" in passed.stdout, passed.stderr  # the proxy itself is sound

    damaging_store.drop_metadata = True
    lost = excap_push(source, f"s3://{BUCKET}/lost", damaging_store.url)
    assert lost.returncode == 2 and "Traceback" not in lost.stderr
    (line,) = lost.stderr.strip().splitlines()
    assert line.startswith(f"excap: error: s3://{BUCKET}/lost/") and "differs after upload" in line

    damaging_store.drop_metadata, damaging_store.truncate = False, True
    cut = excap_push(source, f"s3://{BUCKET}/cut", damaging_store.url)
    assert cut.returncode == 2 and damaging_store.damaged
    (line,) = cut.stderr.strip().splitlines()
    assert line == (f"excap: error: s3://{BUCKET}/{damaging_store.damaged[0]}: size or checksum differs after upload "
                    "(the local file changed, or the upload was damaged)")
    stored = s3.head_object(Bucket=BUCKET, Key=damaging_store.damaged[0])
    assert stored["ContentLength"] == (source / damaging_store.damaged[0].split("/", 1)[1]).stat().st_size - 10

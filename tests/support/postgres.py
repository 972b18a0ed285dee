"""A real PostgreSQL server for the catalogue tests (a pytest plugin, registered in tests/conftest.py).

`postgres_server` (session): `initdb` in a temporary folder and `pg_ctl start` listening on 127.0.0.1 only, on a
free port, with its unix socket in that folder; ready once `pg_isready` says so; stopped at the end. PostgreSQL
refuses to run as root: as root the server runs as the unprivileged `postgres` user (Debian's package creates it)
and the folder is handed to it. `postgres_catalog` (per test): a fresh empty database on that server, as a URL.

Without the PostgreSQL binaries the tests skip, saying what to install (and fail under EXCAP_REQUIRE_ALL=1).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.requirements import missing
from tests.support.waiting import wait_for

SERVER_USER = "postgres"  # the system user the server runs as when the tests run as root
SUPERUSER = "excap"  # the database role the tests connect as (trust authentication, loopback only)
START_TIMEOUT_S = 30.0
_databases = itertools.count(1)


def postgres_bin() -> Path | None:
    """The folder of initdb, pg_ctl and pg_isready (Debian keeps them in /usr/lib/postgresql/VERSION/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                      if p.parent.name.isdigit() else 0)
    for folder in reversed(versions):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    bin: Path
    folder: Path  # data in folder/data, socket and log in folder
    port: int
    as_user: list[str]  # the command prefix that runs a program as the server's user

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, str(self.bin / program), *args], capture_output=True, text=True,
                              timeout=120, check=False, cwd=self.folder)

    def pg_ctl(self, action: str, *args: str) -> None:
        """`pg_ctl ACTION` without waiting (readiness is polled by `wait_ready`)."""
        done = self.run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-W",
                        "-o", f"-k {self.folder} -h 127.0.0.1 -p {self.port}", *args)
        assert done.returncode == 0, f"pg_ctl {action} failed: {done.stderr}{self._log_tail()}"

    def ready(self) -> bool:
        return self.run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)).returncode == 0

    def wait_ready(self) -> None:
        wait_for(self.ready, timeout=START_TIMEOUT_S, interval=0.1, message=f"PostgreSQL on port {self.port}")

    def start(self) -> None:
        self.pg_ctl("start")
        self.wait_ready()

    def restart(self) -> None:
        """Stop the server (fast: cutting every connection) and start it again; returns once it is ready."""
        self.pg_ctl("restart", "-m", "fast")
        self.wait_ready()

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def create_database(self, icu_locale: str | None = None) -> str:
        """A fresh database; with `icu_locale` (e.g. en-US) its text sorts by that language's rules, not bytes."""
        import psycopg

        name = f"catalogue_{os.getpid()}_{next(_databases)}"
        collation = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'" if icu_locale else ""
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"{collation}'.encode())
        return self.url(name)

    def _log_tail(self) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""


def _server_user_prefix(folder: Path) -> list[str]:
    """As root, run the server as SERVER_USER (owning `folder`); as anyone else, as oneself."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        missing(f"the tests run as root and PostgreSQL refuses root: the '{SERVER_USER}' system user is missing "
                "(apt-get install postgresql creates it)")
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", SERVER_USER, "--"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binaries = postgres_bin()
    if binaries is None:
        missing("PostgreSQL is not installed (no initdb/pg_ctl): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed: pip install -e '.[dev]' (it pulls the fleet extra)")
    folder = Path(tempfile.mkdtemp(prefix="excap-postgres-"))
    server = PostgresServer(binaries, folder, free_port(), _server_user_prefix(folder))
    try:
        done = server.run("initdb", "-D", str(server.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                          "--locale=C", "--no-sync")
        assert done.returncode == 0, f"initdb failed: {done.stderr}"
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_catalog(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database for one test's catalogue."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest) -> str | None:
    """Each catalogue backend in turn: None (the folder's own SQLite file), then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_catalog")
    return url


def catalogue_rows(url: str) -> tuple[int, int]:
    """(rows, distinct (source, path) keys) of a PostgreSQL catalogue's episodes table."""
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*), count(DISTINCT (source, path)) FROM excap_episodes").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def indexed_rows(url: str) -> int:
    """Rows in a PostgreSQL catalogue so far (0 before its tables exist)."""
    import psycopg

    try:
        return catalogue_rows(url)[0]
    except psycopg.errors.UndefinedTable:
        return 0


def restart_while_indexing(indexer: subprocess.Popen[str], url: str, server: PostgresServer) -> tuple[int, str, str]:
    """Restart the catalogue server once `indexer` has written its first rows; (rows before the restart, the
    indexer's stdout, its stderr). The indexer is killed if it has not ended by the time this returns."""
    try:
        wait_for(lambda: indexed_rows(url) > 0 or indexer.poll() is not None, timeout=120, message="the first rows")
        assert indexer.poll() is None, "indexing ended before the restart"
        before = indexed_rows(url)
        server.restart()
        out, err = indexer.communicate(timeout=300)
    finally:
        if indexer.poll() is None:
            indexer.kill()
            indexer.wait()
    return before, out, err

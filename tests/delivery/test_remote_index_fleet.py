"""A prefix indexed into one real PostgreSQL catalogue by several processes at once, across a server restart, again
and again, and by a role that is no superuser: one row per episode and no error. Catalogues written by the previous
versions are migrated in place."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import psycopg

from excap.catalogue.index import Catalogue
from tests.support import report as measured
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.postgres import PostgresServer, catalogue_rows, restart_while_indexing
from tests.support.remote_episodes import put_episode
from tests.support.seaweedfs import SeaweedFS
from tests.support.uplink import upload_env

COPIES = 10  # of each of the three recordings: 30 objects


def _env(seaweedfs: SeaweedFS) -> dict[str, str]:
    return {**upload_env(), "AWS_ENDPOINT_URL": seaweedfs.endpoint}


def _index(seaweedfs: SeaweedFS, target: str, catalog: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(excap_command("index", target, "--catalog", catalog, "--json", *options), cwd=REPO,
                            env=_env(seaweedfs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _many(seaweedfs: SeaweedFS, bucket: str, recorded_dir: Path) -> str:
    s3 = seaweedfs.client()
    for copy in range(COPIES):
        for original in sorted(recorded_dir.glob("*.h5")):
            put_episode(s3, bucket, f"fleet/copy{copy:02d}/{original.name}", original)
    return f"s3://{bucket}/fleet"


def test_two_stations_indexing_one_prefix_at_once(seaweedfs: SeaweedFS, s3_bucket: str, recorded_dir: Path,
                                                  postgres_catalog: str) -> None:
    target = _many(seaweedfs, s3_bucket, recorded_dir)
    objects = 3 * COPIES
    writers = [_index(seaweedfs, target, postgres_catalog), _index(seaweedfs, target, postgres_catalog)]
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0 and err == "", err
        report = json.loads(out)
        assert len(report["added"]) + len(report["updated"]) + report["unchanged"] == objects
    assert catalogue_rows(postgres_catalog) == (objects, objects)
    again = _index(seaweedfs, target, postgres_catalog)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and err == "" and json.loads(out)["unchanged"] == objects
    assert json.loads(out)["bytes_read"] == 0
    assert catalogue_rows(postgres_catalog) == (objects, objects)


def test_catalogue_server_restart_while_indexing(seaweedfs: SeaweedFS, s3_bucket: str, recorded_dir: Path,
                                                 postgres_server: PostgresServer, postgres_catalog: str) -> None:
    target = _many(seaweedfs, s3_bucket, recorded_dir)
    objects = 3 * COPIES
    postgres_server.restart()  # between runs: the next one connects afresh
    indexer = _index(seaweedfs, target, postgres_catalog)
    before, out, err = restart_while_indexing(indexer, postgres_catalog, postgres_server)
    assert 0 < before < objects
    measured.record("remote index", "server restart mid-index: rows before, indexer exit status",
                    f"{before}/{objects}, {indexer.returncode}")
    if indexer.returncode == 0:  # it reconnected and finished
        assert err == "" and len(json.loads(out)["added"]) + json.loads(out)["unchanged"] == objects
    else:  # or it stopped with one line, keeping the rows written so far
        assert indexer.returncode == 2 and len(err.splitlines()) == 1 and err.startswith("excap: error: "), err
    again = _index(seaweedfs, target, postgres_catalog)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and err == ""
    report = json.loads(out)
    assert report["unchanged"] + len(report["added"]) == objects and not report["updated"]
    assert catalogue_rows(postgres_catalog) == (objects, objects)


def test_a_role_with_only_the_documented_rights(seaweedfs: SeaweedFS, s3_bucket: str, recorded_dir: Path,
                                                postgres_server: PostgresServer, postgres_catalog: str) -> None:
    """The owner role creates the tables on first use (CREATE on the schema); a writer role with only SELECT,
    INSERT, UPDATE and DELETE on them indexes afterwards. Neither is a superuser."""
    database = postgres_catalog.rsplit("/", 1)[1]
    with psycopg.connect(postgres_catalog, autocommit=True) as db:
        for role in ("fleet_owner", "fleet_writer"):
            db.execute(f"DROP ROLE IF EXISTS {role}")  # left by an earlier session of this server: none, normally
            db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        db.execute("GRANT CREATE, USAGE ON SCHEMA public TO fleet_owner")
        db.execute("GRANT USAGE ON SCHEMA public TO fleet_writer")
    owner = postgres_server.url(database).replace("://excap@", "://fleet_owner@")
    writer = postgres_server.url(database).replace("://excap@", "://fleet_writer@")
    assert owner != postgres_catalog and writer != postgres_catalog
    s3 = seaweedfs.client()
    for original in sorted(recorded_dir.glob("*.h5")):
        put_episode(s3, s3_bucket, f"fleet/{original.name}", original)
    target = f"s3://{s3_bucket}/fleet"

    first = _index(seaweedfs, target, owner)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and err == "", err
    with psycopg.connect(owner, autocommit=True) as db:
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON excap_episodes, excap_unreadable, excap_catalogue_meta "
                   "TO fleet_writer")
    again = _index(seaweedfs, target, writer, "--rebuild")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and err == "", err
    assert len(json.loads(out)["added"]) == 3 and catalogue_rows(postgres_catalog) == (3, 3)


def test_earlier_catalogues_are_migrated(seaweedfs: SeaweedFS, s3_bucket: str, episode_dir: Path,
                                         postgres_catalog: str) -> None:
    # SQLite version 3: rows keyed by path alone, no location or etag.
    with Catalogue(episode_dir) as catalogue:
        assert len(catalogue.update().added) == 3
    database = episode_dir / ".excap" / "catalogue.sqlite"
    with sqlite3.connect(database) as db:
        old_columns = [c for c in (r[1] for r in db.execute("PRAGMA table_info(episodes)"))
                       if c not in ("source", "location", "etag")]
        db.execute(f"CREATE TABLE v3 AS SELECT {', '.join(old_columns)} FROM episodes")
        db.execute("CREATE TABLE u3 AS SELECT path, size, mtime_ns, problem FROM unreadable")
        db.execute("DROP TABLE episodes")
        db.execute("DROP TABLE unreadable")
        db.execute("ALTER TABLE v3 RENAME TO episodes")
        db.execute("ALTER TABLE u3 RENAME TO unreadable")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'version'")
    with Catalogue(episode_dir) as catalogue:
        report = catalogue.update()
        assert report.unchanged == 3 and not report.added  # kept, not read again
        assert all(r.location == r.path for r in catalogue.records())
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone() == ("4",)

    # PostgreSQL version 1: no etag column.
    with Catalogue(episode_dir, catalog=postgres_catalog) as catalogue:
        catalogue.update()
    with psycopg.connect(postgres_catalog, autocommit=True) as db:
        db.execute("ALTER TABLE excap_episodes DROP COLUMN etag")
        db.execute("UPDATE excap_catalogue_meta SET value = '1' WHERE key = 'version'")
    with Catalogue(episode_dir, catalog=postgres_catalog) as catalogue:
        assert catalogue.update().unchanged == 3
    put_episode(seaweedfs.client(), s3_bucket, "fleet/one.h5", sorted(episode_dir.glob("*.h5"))[0])
    done = subprocess.run(excap_command("index", f"s3://{s3_bucket}/fleet", "--catalog", postgres_catalog, "--json"),
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=_env(seaweedfs))
    assert done.returncode == 0 and json.loads(done.stdout)["added"] == ["one.h5"], done.stderr
    with psycopg.connect(postgres_catalog) as db:
        assert db.execute("SELECT value FROM excap_catalogue_meta WHERE key = 'version'").fetchone() == ("2",)
        assert catalogue_rows(postgres_catalog) == (4, 4)


def test_without_a_catalogue_a_prefix_is_one_line(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    env = {k: v for k, v in _env(seaweedfs).items() if k != "EXCAP_CATALOG"}
    done = subprocess.run(excap_command("index", f"s3://{s3_bucket}/fleet"), capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"excap: error: s3://{s3_bucket}/fleet: an object-store prefix is catalogued in --catalog "
                           "URL_OR_FILE (or $EXCAP_CATALOG): none given\n")

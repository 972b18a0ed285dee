"""Benchmark: the episode catalogue in SQLite against PostgreSQL, in the same run; prints JSON.

    python bench/catalogue.py [--episodes 200] [--rows 5000] [--queries 30] [--catalog postgresql://...]

One short simulated recording is copied `--episodes` times into a folder, which is indexed into the folder's own
SQLite catalogue and into PostgreSQL (`--catalog`, else a temporary server started here as in the tests:
tests/support/postgres.py). Reported per backend: episodes indexed per second (reading, validating and hashing
each file, then writing its row), rows written per second by the store alone (`--rows` records, one transaction
each on PostgreSQL, as the indexer writes them), and the median time of a filtered list query over those rows.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from excap.catalogue.index import Catalogue, EpisodeFilter
from excap.station.sim import SimSessionOptions, run_sim_session


@contextmanager
def temporary_postgres() -> Iterator[str]:
    from tests.support.postgres import PostgresServer, _server_user_prefix, free_port, postgres_bin

    binaries = postgres_bin()
    if binaries is None:
        raise SystemExit("bench: PostgreSQL is not installed (apt-get install postgresql) and no --catalog given")
    folder = Path(tempfile.mkdtemp(prefix="excap-bench-postgres-"))
    server = PostgresServer(binaries, folder, free_port(), _server_user_prefix(folder))
    try:
        done = server.run("initdb", "-D", str(server.data), "-U", "excap", "-A", "trust", "-E", "UTF8", "--locale=C")
        if done.returncode != 0:
            raise SystemExit(f"bench: initdb failed: {done.stderr}")
        server.start()
        yield server.create_database()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def episode_folder(root: Path, episodes: int) -> Path:
    source = run_sim_session(SimSessionOptions(out_dir=root / "source", duration_s=2.0, cameras=1, width=160,
                                               height=120, fps=10, task="dig-and-load"))
    folder = root / "episodes"
    folder.mkdir()
    for number in range(episodes):
        shutil.copyfile(source, folder / f"episode{number:05d}.h5")
    return folder


def measure(folder: Path, catalog: str | None, rows: int, queries: int) -> dict[str, float]:
    with Catalogue(folder, catalog=catalog) as catalogue:
        start = time.perf_counter()
        report = catalogue.update(rebuild=True)
        index_s = time.perf_counter() - start
        template = catalogue.records()[0]
        start = time.perf_counter()
        with catalogue.store.transaction():
            for number in range(rows):
                catalogue.store.put_episode(replace(
                    template, path=f"synthetic/{number:06d}.h5", task="trenching" if number % 4 else "dig-and-load",
                    duration_s=float(number % 600), started_ns=(template.started_ns or 0) + number * 1_000_000_000))
        write_s = time.perf_counter() - start
        selection = EpisodeFilter(task="trenching", min_duration=60.0, max_duration=300.0, valid=True)
        catalogue.records(selection)  # warm-up
        times = []
        for _ in range(queries):
            start = time.perf_counter()
            selected = catalogue.records(selection)
            times.append(time.perf_counter() - start)
    indexed = len(report.added)
    return {"episodes_indexed": indexed, "episodes_per_s": round(indexed / index_s, 1),
            "rows_written": rows, "rows_per_s": round(rows / write_s, 1),
            "query_rows": len(selected),
            "filtered_query_median_ms": round(statistics.median(times) * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--catalog", default=None, help="a PostgreSQL URL (default: a temporary server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="excap-bench-catalogue-") as tmp:
        folder = episode_folder(Path(tmp), args.episodes)
        results = {"sqlite": measure(folder, None, args.rows, args.queries)}
        if args.catalog:
            results["postgresql"] = measure(folder, args.catalog, args.rows, args.queries)
        else:
            with temporary_postgres() as url:
                results["postgresql"] = measure(folder, url, args.rows, args.queries)
    print(json.dumps({"python": platform.python_version(), "cpus": os.cpu_count(), "episodes": args.episodes,
                      "query": "task=trenching, 60 s <= duration <= 300 s, valid", **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

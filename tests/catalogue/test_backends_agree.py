"""Fuzz: any filter selects the same records, in the same order, from the SQLite and the PostgreSQL catalogue.

Both hold the same rows: the three recorded episodes and synthetic ones with clashing start times, texts that sort
differently by locale (case, accents; the PostgreSQL database sorts text by en-US rules), unknown start times and
boundary durations.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from excap.catalogue.index import Catalogue, EpisodeFilter
from excap.catalogue.rows import started_ns
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.postgres import PostgresServer

SITES = ("north-pit", "North-pit", "port-é", "port-e", "", "simulated-site")
TASKS = ("dig-and-load", "trenching", "Trenching", "grading")
OUTCOMES = ("success", "failure", "aborted", "unlabeled")
NAMES = ("alpha", "Alpha", "_under", "ébène", "zeta", "Zeta", "10", "9")
FIRST_DAY = datetime(2026, 3, 1, tzinfo=UTC)

filters = st.builds(
    EpisodeFilter,
    site=st.none() | st.sampled_from(SITES), task=st.none() | st.sampled_from(TASKS),
    outcome=st.none() | st.sampled_from(OUTCOMES), machine_kind=st.none() | st.sampled_from(["excavator", "x"]),
    since=st.none() | st.dates(date(2026, 2, 27), date(2026, 3, 6)).map(date.isoformat),
    until=st.none() | st.datetimes(datetime(2026, 2, 27), datetime(2026, 3, 6)).map(
        lambda moment: moment.replace(microsecond=0).isoformat()),
    min_duration=st.none() | st.sampled_from([0.0, 2.0, 2.5, 30.0, 99.5]) | st.floats(0, 200),
    max_duration=st.none() | st.sampled_from([0.0, 2.5, 30.0, 100.0]) | st.floats(0, 200),
    valid=st.none() | st.booleans())


def _fill(catalogue: Catalogue) -> None:
    catalogue.update()
    template = catalogue.records()[0]
    with catalogue.store.transaction():
        for number in range(96):
            moment = FIRST_DAY + timedelta(hours=7 * (number // 3))  # three rows share each start time
            started_at = "" if number % 17 == 0 else moment.isoformat().replace("+00:00", "Z")
            catalogue.store.put_episode(replace(
                template, path=f"{NAMES[number % len(NAMES)]}/{number % 5}-{number}.h5" if number % 2 else
                f"{NAMES[(number * 3) % len(NAMES)]}{number}.h5",
                site=SITES[number % len(SITES)], task=TASKS[number % len(TASKS)],
                outcome=OUTCOMES[number % len(OUTCOMES)], started_at=started_at, started_ns=started_ns(started_at),
                duration_s=[0.0, 2.5, 30.0, 99.5, 100.0, 150.25][number % 6], valid=number % 3 != 0))


def test_any_filter_selects_the_same_from_both_backends(episode_dir: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database(icu_locale="en-US")  # sorts "alpha" before "Alpha", "ébène" near "e"
    with Catalogue(episode_dir) as embedded, Catalogue(episode_dir, catalog=url) as shared:
        _fill(embedded)
        _fill(shared)
        assert len(embedded.records()) == len(shared.records()) == 99

        @fuzz_settings(150)
        @given(selection=filters)
        def check(selection: EpisodeFilter) -> None:
            tried("catalogue filter: SQLite and PostgreSQL agree")
            assert shared.records(selection) == embedded.records(selection)

        check()

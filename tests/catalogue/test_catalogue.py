import json
import os
from pathlib import Path

import h5py
import pytest

from excap.catalogue.index import Catalogue, EpisodeFilter, parse_time_bound, update_catalogue
from excap.cli.datasets import main
from excap.core.errors import ConfigError


def test_index_is_incremental_and_rebuildable(episode_dir: Path, catalog: str | None) -> None:
    report = update_catalogue(episode_dir, catalog=catalog)
    assert len(report.added) == 3 and not report.updated and not report.removed
    assert (episode_dir / ".excap" / "catalogue.sqlite").is_file() == (catalog is None)
    assert update_catalogue(episode_dir, catalog=catalog).unchanged == 3

    files = sorted(episode_dir.glob("*.h5"))
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    files[1].unlink()
    with h5py.File(episode_dir / "foreign.h5", "w") as handle:
        handle.attrs["schema"] = "something-else"
    report = update_catalogue(episode_dir, catalog=catalog)
    assert report.updated == [files[0].name]
    assert report.removed == [files[1].name]
    assert report.added == []
    assert report.unreadable == [("foreign.h5", "not an excap episode (foreign HDF5 file: root attribute schema is "
                                                "'something-else', expected 'excap.episode')")]
    assert report.unchanged == 1
    assert update_catalogue(episode_dir, catalog=catalog).unreadable == report.unreadable  # reported, not read again

    with Catalogue(episode_dir, catalog=catalog) as catalogue:
        records = {r.path: r for r in catalogue.records()}
        assert "foreign.h5" not in records
        episode = records[files[0].name]
        assert episode.valid and episode.machine_kind == "excavator" and episode.duration_s > 2
        assert episode.sha256 and episode.size == files[0].stat().st_size
        assert any(s["path"] == "cameras/side" for s in episode.streams)
        assert [r.path for r in catalogue.records(EpisodeFilter(valid=True))] == [files[0].name, files[2].name]

    with h5py.File(files[0], "r") as source, h5py.File(episode_dir / "foreign.h5", "w") as handle:
        handle.attrs.update(source.attrs)  # replaced by an (invalid) episode: read again
    report = update_catalogue(episode_dir, rebuild=True, catalog=catalog)
    assert sorted(report.added) == sorted([files[0].name, files[2].name, "foreign.h5"]) and not report.unreadable
    with Catalogue(episode_dir, catalog=catalog) as catalogue:
        assert not next(r for r in catalogue.records() if r.path == "foreign.h5").valid


def test_filters(episode_dir: Path, catalog: str | None) -> None:
    with Catalogue(episode_dir, catalog=catalog) as catalogue:
        catalogue.update()
        everything = catalogue.records()
        assert len(everything) == 3
        assert [r.started_at for r in everything] == sorted(r.started_at for r in everything)
        day = everything[0].started_at[:10]
        assert len(catalogue.records(EpisodeFilter(since=day, until=day))) == 3
        assert catalogue.records(EpisodeFilter(until="2000-01-01")) == []
        assert len(catalogue.records(EpisodeFilter(since=everything[1].started_at))) == 2
        assert len(catalogue.records(EpisodeFilter(until=everything[0].started_at))) == 1
        assert [r.operator_id for r in catalogue.records(EpisodeFilter(operator_id="operator-bert-23"))] == [
            "operator-bert-23"]
        assert len(catalogue.records(EpisodeFilter(task="trenching"))) == 1
        assert len(catalogue.records(EpisodeFilter(machine_kind="excavator", site="simulated-site"))) == 3
        assert catalogue.records(EpisodeFilter(machine_model="no-such-model")) == []
        assert catalogue.records(EpisodeFilter(outcome="success")) == []
        assert len(catalogue.records(EpisodeFilter(min_duration=1.0, max_duration=60.0))) == 3
        assert catalogue.records(EpisodeFilter(min_duration=100.0)) == []
    with pytest.raises(ConfigError):
        parse_time_bound("yesterday", upper=False)


def test_cli_index_and_list(episode_dir: Path, catalog: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    option = ["--catalog", catalog] if catalog else []
    assert main(["index", str(episode_dir), *option]) == 0
    assert "3 added" in capsys.readouterr().out
    assert main(["list", str(episode_dir), "--task", "dig-and-load", "--json", *option]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2 and {r["task"] for r in listed} == {"dig-and-load"}
    assert main(["list", str(episode_dir), "--operator", "operator-cleo-31", *option]) == 0
    table = capsys.readouterr().out
    assert "operator-cleo-31" in table and "1 episodes" in table
    assert main(["list", str(episode_dir), "--since", "not-a-date", *option]) == 2
    assert "excap: error:" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--since", "9999-12-31"], ["--until", "0001-01-01"], ["--since", "2262-04-12"],
                                    ["--until", "9999-12-31T23:59:59+14:00"], ["--min-duration", "nan"],
                                    ["--max-duration", "inf"]])
def test_out_of_range_filters_are_one_line_errors(episode_dir: Path, option: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(episode_dir), *option]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("excap: error: ") and captured.out == ""


def test_start_times_outside_the_catalogue_range_do_not_break_it(episode_dir: Path, catalog: str | None) -> None:
    first = sorted(episode_dir.glob("*.h5"))[0]
    with h5py.File(first, "r+") as handle:
        handle.attrs["started_at"] = "9999-12-31T23:59:59Z"
    with Catalogue(episode_dir, catalog=catalog) as catalogue:
        assert catalogue.update().added and not catalogue.update().unreadable
        (record,) = [r for r in catalogue.records() if r.path == first.name]
        assert record.started_ns is None and len(catalogue.records(EpisodeFilter(since="2000-01-01"))) == 2


def test_catalogue_is_private_and_repaired(episode_dir: Path) -> None:
    state, database = episode_dir / ".excap", episode_dir / ".excap" / "catalogue.sqlite"
    os.chmod(state, 0o755)
    update_catalogue(episode_dir)
    assert state.stat().st_mode & 0o777 == 0o700 and database.stat().st_mode & 0o777 == 0o600
    os.chmod(state, 0o755)
    os.chmod(database, 0o644)
    update_catalogue(episode_dir)
    assert state.stat().st_mode & 0o777 == 0o700 and database.stat().st_mode & 0o777 == 0o600

"""Every tool that reads episodes, run over several hundred hostile files made from a real recording.

Each entry point must either work or fail with one EpisodeError line naming the file (CLI: exit status 2 and
`excap: error: ...`), never with another exception; `excap validate` must report every file readers refuse.
Failures are collected over the whole corpus and reported together.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from capture_node import cli
from capture_node.datasets.frames import Layout, episode_layout, iter_frames
from capture_node.episode_reader import EpisodeReader
from capture_node.errors import EpisodeError, ExcapError
from capture_node.summary import summarize, summary_json, summary_text
from capture_node.validation import validate_episode
from tests.conftest import REPO, excap_command
from tests.support.hostile_episodes import HostileEpisode, hostile_corpus
from tests.support.report import record

SLOW_CALL_S = 20.0  # no entry point may take longer than this on one file


@pytest.fixture(scope="module")
def corpus(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> list[HostileEpisode]:
    episodes = hostile_corpus(sim_episode, tmp_path_factory.mktemp("hostile"))
    record("hostile episodes", "files", len(episodes))
    return episodes


def read_everything(path: Path) -> None:
    """The EpisodeReader API end to end: streams, rows, columns, frames, events, steps."""
    with EpisodeReader(path) as reader:
        for info in reader.streams:
            stream = reader.stream(info.path)
            _ = stream.t_ns, stream.attrs, stream.dropped
            if len(stream):
                _ = stream[0], stream[-1], stream[len(stream) // 2]
            for column in info.columns:
                if column != "frames":
                    stream.column(column)
                    stream.names(column)
        for path_ in reader.paths("camera"):
            camera = reader.camera(path_)
            for index in range(len(camera)):
                camera.image(index)
        reader.events()
        reader.state_signals()
        for _ in reader.steps(rate_hz=10):
            pass


def inspect_summary(path: Path) -> None:
    summary = summarize(path)
    summary_text(summary)
    summary_json(summary)


def export_reading(path: Path) -> None:
    """What an export reads of an episode: its layout, then every aligned frame."""
    layout: Layout = episode_layout(path)
    for _ in iter_frames(path, 10, layout):
        pass


def check_corpus(corpus: list[HostileEpisode], points: dict[str, Callable[[Path], object]],
                 allowed: type[BaseException] = EpisodeError) -> tuple[list[str], Counter]:
    """Run every entry point on every file; return the failures (anything but `allowed`) and the outcomes."""
    failures: list[str] = []
    outcomes: Counter = Counter()
    for episode in corpus:
        for name, point in points.items():
            started = time.monotonic()
            try:
                point(episode.path)
                outcomes[f"{name}: worked"] += 1
            except allowed as exc:
                outcomes[f"{name}: {type(exc).__name__}"] += 1
                if "\n" in str(exc) or (isinstance(exc, EpisodeError) and episode.path.name not in str(exc)):
                    failures.append(f"{name} on {episode.name}: error not one line naming the file: {exc}")
            except BaseException as exc:  # the point of the test: report every other exception
                where = traceback.extract_tb(exc.__traceback__)[-1]
                failures.append(f"{name} on {episode.name}: {type(exc).__name__}: {str(exc)[:160]} "
                                f"({Path(where.filename).name}:{where.lineno})")
            elapsed = time.monotonic() - started
            if elapsed > SLOW_CALL_S:
                failures.append(f"{name} on {episode.name}: took {elapsed:.1f} s")
    return failures, outcomes


def test_reader_api_on_every_hostile_episode(corpus: list[HostileEpisode]) -> None:
    failures, outcomes = check_corpus(corpus, {
        "EpisodeReader": read_everything,
        "inspect summary": inspect_summary,
        "export reading": export_reading,
    })
    record("hostile episodes", "reader API outcomes", dict(sorted(outcomes.items())))
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    assert outcomes["EpisodeReader: worked"] > 50 and outcomes["EpisodeReader: EpisodeError"] > 300


def test_validate_reports_every_file_readers_refuse(corpus: list[HostileEpisode]) -> None:
    missed, invalid = [], 0
    for episode in corpus:
        problems = validate_episode(episode.path)  # never raises
        invalid += bool(problems)
        assert all("\n" not in p and p.startswith(f"{episode.path}: ") for p in problems), problems
        try:
            EpisodeReader(episode.path).close()
        except EpisodeError as exc:
            if not problems:
                missed.append(f"{episode.name}: readers refuse it ({exc}) but validate says valid")
    record("hostile episodes", "invalid by validate", invalid)
    assert not missed, "\n".join(missed)
    assert validate_episode(corpus[0].path) == []  # the unharmed compact copy is valid


def run_cli(*args: str) -> tuple[int, str]:
    """`excap ...` in this process (fast); returns the exit status and what went to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, err.getvalue()


def test_every_command_on_every_hostile_episode(corpus: list[HostileEpisode], tmp_path: Path) -> None:
    def command(*args: str) -> Callable[[Path], object]:
        def run(path: Path) -> None:
            out = tmp_path / path.stem
            status, err = run_cli(*[a.format(path=path, out=out) for a in args])
            for leftover in tmp_path.glob(f"{path.stem}*"):
                leftover.unlink()
            if status == 2:
                last = err.strip().splitlines()[-1] if err.strip() else ""
                if not last.startswith("excap: error: "):
                    raise AssertionError(f"exit 2 without an error line: {err[-300:]!r}")
                raise ExcapError(last)
            if status not in (0, 1):
                raise AssertionError(f"exit status {status}")
        return run

    failures, outcomes = check_corpus(corpus, {
        "inspect": command("inspect", "--json", "{path}"),
        "validate": command("validate", "{path}"),
        "render": command("render", "{path}", "--out", "{out}.mp4", "--fps", "2", "--no-progress"),
        "plot": command("plot", "{path}", "--out", "{out}.png"),
        "annotate": command("annotate", "{path}", "--out", "{out}.phases.json", "--force"),
        "replay": command("replay", "{path}", "--can", "virtual:hostile", "--quiet", "--rate", "1000"),
        "can export": command("can", "export", "{path}", "--out", "{out}.log"),
    }, allowed=ExcapError)
    record("hostile episodes", "command outcomes", dict(sorted(outcomes.items())))
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    assert outcomes["validate: worked"] == len(corpus)  # validate reports, it never fails


@pytest.mark.parametrize("category", ["truncation", "bitflip-metadata", "dataset", "frames", "foreign"])
def test_real_cli_gives_one_line_per_bad_file(corpus: list[HostileEpisode], category: str, tmp_path: Path) -> None:
    refused = []
    for episode in corpus:
        if episode.category == category:
            try:
                EpisodeReader(episode.path).close()
            except EpisodeError:
                refused.append(episode)
    sample = refused[:: max(1, len(refused) // 2)][:2]
    assert sample, f"no refused file of category {category}"
    for episode in sample:
        for args in (("inspect", str(episode.path)), ("render", str(episode.path), "--out", str(tmp_path / "r.mp4"))):
            result = subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=120)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2, (episode.name, args, result.stderr)
            assert len(lines) == 1 and lines[0].startswith(f"excap: error: {episode.path}: "), result.stderr
        validate = subprocess.run(excap_command("validate", str(episode.path)), capture_output=True, text=True,
                                  cwd=REPO, timeout=120)
        assert validate.returncode == 1 and "Traceback" not in validate.stderr
        assert validate.stdout.strip() and all(line.startswith(f"{episode.path}: ")
                                               for line in validate.stdout.strip().splitlines())

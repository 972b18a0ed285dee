"""Every tool that reads episodes, run over several hundred hostile files made from a real recording.

Each entry point must either work or fail with one EpisodeError line naming the file (CLI: exit status 2 and
`excap: error: ...`), never with another exception, and never take long; `excap validate` must report every
file readers refuse. Every entry point runs on a seeded sample of every category of damage (`PER_CATEGORY`
files each, times `EXCAP_FUZZ_SCALE`: `EXCAP_FUZZ_SCALE=70` runs the whole corpus). The files are spread over
worker processes; failures are collected over the sample and reported together.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.support.commands import excap_command
from tests.support.fuzzing import SCALE
from tests.support.hostile_episodes import HostileEpisode, hostile_corpus, sample_by_category
from tests.support.paths import REPO
from tests.support.report import record

SLOW_CALL_S = 20.0  # no entry point may take longer than this on one file
WORKERS = max(1, min(4, os.cpu_count() or 1))
PER_CATEGORY = 3  # files of each category every entry point runs on (times EXCAP_FUZZ_SCALE)


@pytest.fixture(scope="module")
def corpus(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> list[HostileEpisode]:
    episodes = hostile_corpus(sim_episode, tmp_path_factory.mktemp("hostile"))
    record("hostile episodes", "files", len(episodes))
    return episodes


# -- the entry points (module level: they run in worker processes) ----------------------------------------------


def read_everything(path: Path) -> None:
    """The EpisodeReader API end to end: streams, rows, columns, frames, events, steps."""
    from excap.episode.reader import EpisodeReader

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
        for camera_path in reader.paths("camera"):
            camera = reader.camera(camera_path)
            for index in range(len(camera)):
                camera.image(index)
        reader.events()
        reader.state_signals()
        for _ in reader.steps(rate_hz=10):
            pass


def inspect_summary(path: Path) -> None:
    from excap.episode.summary import summarize, summary_json, summary_text

    summary = summarize(path)
    summary_text(summary)
    summary_json(summary)


def export_reading(path: Path) -> None:
    """What an export reads of an episode: its layout, then every aligned frame."""
    from excap.datasets.frames import episode_layout, iter_frames

    layout = episode_layout(path)
    for _ in iter_frames(path, 10, layout):
        pass


class CommandFailed(Exception):
    """`excap ...` ended with exit status 2 and one `excap: error:` line (the expected way to refuse a file)."""


def strict_utf8() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def command(*template: str) -> Callable[[Path, Path], None]:
    """`excap ...` run in this process through cli.main (fast); `{path}` and `{out}` are filled in."""
    def run(path: Path, scratch: Path) -> None:
        from excap.cli import main as cli

        out = scratch / path.stem
        stdout, stderr = strict_utf8(), strict_utf8()  # as a UTF-8 terminal: text that cannot be shown fails
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = cli.main([a.format(path=path, out=out) for a in template])
        for leftover in scratch.glob(f"{path.stem}*"):
            leftover.unlink()
        stderr.flush()
        err = stderr.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
        if status == 2:
            last = err.strip().splitlines()[-1:] or [""]
            if not last[0].startswith("excap: error: "):
                raise AssertionError(f"exit 2 without an error line: {err[-300:]!r}")
            raise CommandFailed(last[0])
        if status not in (0, 1):
            raise AssertionError(f"exit status {status}")
    return run


API = {"EpisodeReader": read_everything, "inspect summary": inspect_summary, "export reading": export_reading}
COMMANDS = {
    "inspect": command("inspect", "--json", "{path}"),
    "validate": command("validate", "{path}"),
    "render": command("render", "{path}", "--out", "{out}.mp4", "--fps", "2", "--no-progress"),
    "plot": command("plot", "{path}", "--out", "{out}.png"),
    "annotate": command("annotate", "{path}", "--out", "{out}.phases.json", "--force"),
    "replay": command("replay", "{path}", "--can", "virtual:hostile", "--quiet", "--rate", "1000"),
    "can export": command("can", "export", "{path}", "--out", "{out}.log"),
}


def accept_annotation(path: Path, scratch: Path) -> None:
    """`excap annotate --accept` writes into the episode: run it on a copy."""
    copy = scratch / f"copy-{path.name}"
    shutil.copyfile(path, copy)
    try:
        command("annotate", "{path}", "--accept", "--author", "tester")(copy, scratch)
    finally:
        copy.unlink(missing_ok=True)


COMMANDS["annotate --accept"] = accept_annotation


def label_outcome(path: Path, scratch: Path) -> None:
    """`excap label` writes into the episode (through a copy it renames): run it on a copy, which stays as valid
    as it was."""
    from excap.episode.validation import validate_episode

    copy = scratch / f"copy-{path.name}"
    shutil.copyfile(path, copy)
    try:
        valid = not validate_episode(copy)
        outputs = scratch / "label-out"  # the runner clears its scratch folder of files named like the episode
        outputs.mkdir(exist_ok=True)
        command("label", "{path}", "--outcome", "success", "--by", "tester")(copy, outputs)
        if valid and validate_episode(copy):
            raise AssertionError(f"labelling made a valid episode invalid: {validate_episode(copy)[:1]}")
    finally:
        copy.unlink(missing_ok=True)
        leftovers = list(scratch.glob(f".{copy.name}.label-*"))
        for leftover in leftovers:
            leftover.unlink()
        assert not leftovers, "a label copy was left behind"


COMMANDS["label"] = label_outcome


def _outcome(name: str, episode: HostileEpisode, action: Callable[[], object], failures: list[str],
             outcomes: Counter) -> str:
    from excap.core.errors import EpisodeError

    started = time.monotonic()
    result = "worked"
    try:
        action()
    except EpisodeError as exc:
        result = "EpisodeError"
        if "\n" in str(exc) or str(episode.path) not in str(exc):
            failures.append(f"{name} on {episode.name}: error not one line naming the file: {exc}")
    except CommandFailed as exc:
        result = "exit 2"
        if "\n" in str(exc):
            failures.append(f"{name} on {episode.name}: more than one line: {exc}")
    except BaseException as exc:  # the point of the test: report every other exception
        where = traceback.extract_tb(exc.__traceback__)[-1]
        failures.append(f"{name} on {episode.name}: {type(exc).__name__}: {str(exc)[:160]} "
                        f"({Path(where.filename).name}:{where.lineno})")
        result = "failed"
    elapsed = time.monotonic() - started
    if elapsed > SLOW_CALL_S:
        failures.append(f"{name} on {episode.name}: took {elapsed:.1f} s")
    outcomes[f"{name}: {result}"] += 1
    return result


def exercise(episode: HostileEpisode) -> tuple[list[str], Counter]:
    """Every entry point on one file, and validate's verdict against the reader's."""
    from excap.episode.validation import validate_episode

    failures: list[str] = []
    outcomes: Counter = Counter()
    opened = _outcome("EpisodeReader open", episode, lambda: read_everything_open(episode.path), failures, outcomes)
    for name, point in API.items():
        _outcome(name, episode, lambda point=point: point(episode.path), failures, outcomes)
    with tempfile.TemporaryDirectory(prefix="excap-hostile-") as scratch:
        for name, run in COMMANDS.items():
            _outcome(name, episode, lambda run=run: run(episode.path, Path(scratch)), failures, outcomes)
    problems = validate_episode(episode.path)
    if opened == "EpisodeError" and not problems:
        failures.append(f"{episode.name}: readers refuse it, but validate says it is valid")
    if any("\n" in p or not p.startswith(f"{episode.path}: ") for p in problems):
        failures.append(f"{episode.name}: validate lines not one line each naming the file: {problems[:3]}")
    outcomes["validate: invalid" if problems else "validate: valid"] += 1
    return failures, outcomes


def read_everything_open(path: Path) -> None:
    from excap.episode.reader import EpisodeReader

    EpisodeReader(path).close()


def test_every_entry_point_on_every_kind_of_hostile_episode(corpus: list[HostileEpisode]) -> None:
    sample = sample_by_category(corpus, max(1, round(PER_CATEGORY * SCALE)))
    assert {e.category for e in sample} == {e.category for e in corpus}
    record("hostile episodes", "files every entry point ran on", len(sample))
    failures: list[str] = []
    outcomes: Counter = Counter()
    with ProcessPoolExecutor(min(WORKERS, len(sample)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for file_failures, file_outcomes in pool.map(exercise, sample, chunksize=2):
            failures += file_failures
            outcomes += file_outcomes
    record("hostile episodes", "outcomes", dict(sorted(outcomes.items())))
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
    # The sample holds both files the readers open and files they refuse (at 3 per category: 27 and 10 of 37).
    assert outcomes["EpisodeReader open: worked"] >= len(sample) // 5
    assert outcomes["EpisodeReader open: EpisodeError"] >= len(sample) // 5
    assert outcomes["validate: worked"] == len(sample)  # `excap validate` reports, it never fails
    assert exercise(corpus[0])[1]["validate: valid"] == 1  # the unharmed compact copy is valid


@pytest.mark.parametrize("category", ["truncation", "bitflip-metadata", "dataset", "frames", "foreign"])
def test_real_cli_gives_one_line_per_bad_file(corpus: list[HostileEpisode], category: str, tmp_path: Path) -> None:
    from excap.core.errors import EpisodeError
    from excap.episode.reader import EpisodeReader

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

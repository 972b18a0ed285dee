"""The command line's output into a pipe whose reader goes away early (`excap inspect EP | head`)."""

import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from tests.support.commands import excap_command
from tests.support.paths import REPO


@pytest.mark.parametrize("command", [("inspect", "{episode}"), ("inspect", "--json", "{episode}"),
                                     ("validate", "{episode}", "{episode}")])
def test_reader_closing_before_any_output(sim_episode: Path, command: tuple[str, ...]) -> None:
    process = subprocess.Popen(excap_command(*[a.format(episode=sim_episode) for a in command]), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()  # gone before excap writes a byte
    _, err = process.communicate(timeout=120)
    assert err == b"", err.decode()
    assert process.returncode == 1


def test_head_reading_one_line_of_a_long_output(sim_episode: Path, tmp_path: Path) -> None:
    """A real `head -n 1` on an inspect output far larger than the pipe's buffer."""
    episode = tmp_path / sim_episode.name
    shutil.copyfile(sim_episode, episode)
    with h5py.File(episode, "r+") as handle:
        handle.attrs["notes"] = "a long note " * 40_000  # about 480 KB of output
    excap = subprocess.Popen(excap_command("inspect", str(episode)), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-n", "1"], stdin=excap.stdout, stdout=subprocess.PIPE)
    assert excap.stdout is not None
    excap.stdout.close()  # only head reads the pipe now
    first, _ = head.communicate(timeout=120)
    _, err = excap.communicate(timeout=120)
    assert first.decode().startswith(f"episode   {episode}")
    assert err == b"", err.decode()
    assert excap.returncode == 1

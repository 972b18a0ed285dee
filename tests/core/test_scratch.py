"""Scratch folders: a killed worker's folder is removed by the next one on the machine, a running one's is not."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from excap.core.scratch import remove_abandoned, scratch_folder

PREFIX = "excap-test-scratch-"
HOLDER = f"""
import sys, time
from pathlib import Path
from excap.core.scratch import scratch_folder
with scratch_folder({PREFIX!r}, Path(sys.argv[1])) as folder:
    (folder / "part.bin").write_bytes(b"x" * 1024)
    print(folder, flush=True)
    time.sleep(600)
"""


def holder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process inside its scratch folder (one file written), and that folder."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(parent)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_workers_folder_goes_with_the_next_scratch_folder_a_running_ones_stays(tmp_path: Path) -> None:
    killed, abandoned = holder(tmp_path)
    running, in_use = holder(tmp_path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        assert (abandoned / "part.bin").is_file()  # a killed process cannot clean up
        with scratch_folder(PREFIX, tmp_path) as mine:
            assert mine.is_dir() and mine.name.startswith(f"{PREFIX}{os.getpid()}-")
            assert not abandoned.exists()
            assert (in_use / "part.bin").is_file()
        assert not mine.exists()
    finally:
        running.kill()
        running.wait(10)
    assert remove_abandoned(PREFIX, tmp_path) == [in_use]
    assert not in_use.exists()


def test_other_folders_are_left_alone(tmp_path: Path) -> None:
    unrelated = [tmp_path / f"{PREFIX}notapid-x", tmp_path / "excap-other-1-x", tmp_path / f"{PREFIX}1x"]
    for path in unrelated:
        path.mkdir()
    (tmp_path / f"{PREFIX}999999999-file").write_text("a file, not a folder")
    assert remove_abandoned(PREFIX, tmp_path) == []
    assert all(path.is_dir() for path in unrelated)

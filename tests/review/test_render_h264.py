"""`excap render` writes H.264 that browsers play (yuv420p, `moov` before `mdat`); without PyAV it says so in one
line and writes OpenCV's mp4v."""

import subprocess
from pathlib import Path

from tests.support.commands import excap_command
from tests.support.imports import run_without
from tests.support.mp4 import top_level_atoms, video_stream
from tests.support.paths import REPO


def test_render_writes_browser_playable_h264(sim_episode: Path, tmp_path: Path) -> None:
    out = tmp_path / "review.mp4"
    result = subprocess.run(excap_command("render", str(sim_episode), "--out", str(out), "--fps", "5",
                                          "--no-progress"), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    frames = int(result.stdout.split(": ")[1].split()[0])
    atoms = top_level_atoms(out)
    assert atoms[0] == "ftyp" and atoms.index("moov") < atoms.index("mdat"), atoms
    info = video_stream(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p", info
    assert info["frames"] == frames > 0
    assert int(info["width"]) % 2 == 0 and int(info["height"]) % 2 == 0


def test_without_pyav_render_says_so_and_writes_mp4v(sim_episode: Path, tmp_path: Path) -> None:
    out = tmp_path / "review.mp4"
    process = run_without(("av",), "render", str(sim_episode), "--out", str(out), "--fps", "2", "--no-progress")
    assert process.returncode == 0, process.stderr
    assert process.stderr.splitlines() == ["excap render: no H.264 encoder here (PyAV with libx264 comes with the "
                                           "exports extra: pip install 'excap[exports]'); writing MPEG-4 Part 2 "
                                           "(mp4v) instead, which browsers do not play"]
    assert video_stream(out)["codec"] == "mpeg4"

"""CAN replay seen from another process: python-can's `virtual` bus stays inside the replaying process (the
command says so), slcan over a pseudo-terminal reaches a separate process (the recipe of docs/ros2.md)."""

import subprocess
import sys
from pathlib import Path

from excap.episode.reader import EpisodeReader
from excap.replay.can_sink import is_command_frame
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.waiting import wait_for

PEER = REPO / "tests" / "support" / "slcan_peer.py"
END_S = 0.5


def test_transmitting_onto_a_virtual_bus_says_it_reaches_only_this_process(sim_episode: Path) -> None:
    result = subprocess.run(excap_command("replay", str(sim_episode), "--can", "virtual:excap-note", "--transmit",
                                          "--end", "0.2"), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "reaches only this process" in line]
    assert len(notes) == 1 and notes[0].startswith("excap replay: transmitting all frames onto virtual"), \
        result.stderr
    dry = subprocess.run(excap_command("replay", str(sim_episode), "--can", "virtual:excap-note", "--end", "0.2",
                                       "--quiet"), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert dry.returncode == 0 and "reaches only this process" not in dry.stderr, dry.stderr


def test_slcan_over_a_pseudo_terminal_reaches_another_process(sim_episode: Path, tmp_path: Path) -> None:
    log = tmp_path / "peer.log"
    with log.open("w") as out:
        peer = subprocess.Popen([sys.executable, str(PEER)], stdin=subprocess.PIPE, stdout=out, text=True)
    try:
        wait_for(lambda: log.read_text().startswith("PTY "), 10, message="the slcan peer's tty")
        tty = log.read_text().splitlines()[0].split(" ", 1)[1]
        result = subprocess.run(excap_command("replay", str(sim_episode), "--can", f"slcan:{tty}", "--transmit",
                                              "--i-understand-this-moves-the-machine", "--end", str(END_S)),
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, result.stderr
    finally:
        assert peer.stdin is not None
        peer.stdin.close()
        peer.wait(10)
    frames = [line[4:] for line in log.read_text().splitlines() if line.startswith(("CMD T", "CMD t"))]
    with EpisodeReader(sim_episode) as reader:
        stream = reader.stream("can/can0")
        end = reader.start_t_ns + int(END_S * 1e9)
        ids = [int(i) for i, t in zip(stream.column("id").tolist(), stream.t_ns.tolist(), strict=True) if t <= end]
    received = [int(f[1:9], 16) if f.startswith("T") else int(f[1:4], 16) for f in frames]
    assert received[:len(ids)] == ids and len(ids) > 100
    neutral = received[len(ids):]  # command frames were sent: the end of the replay sends neutral ones
    assert neutral and all(is_command_frame(i, True) for i in neutral)

"""Real recordings of the simulated wheel loader, made once per test session (fixture `loader_episodes`).

The simulator runs in real time only, so a few minutes of loading cycles are recorded as several episodes side
by side, each in its own process with its own seed (and alternating control patterns): LOADER_SEEDS x
LOADER_SECONDS of cycles take about LOADER_SECONDS of wall time. The first episode has the loader's two cameras
(small, at a low rate) for the review video; the others have none. The command link's stale-input timeout is
widened so that a loaded test machine pausing a recorder cannot latch the machine into neutral: the scripted
operator's phases stay the machine's real phases.
"""

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

LOADER_SEEDS = (1, 2, 3, 4)
LOADER_SECONDS = 45.0  # each holds one whole loading cycle (about 30 s) and most of the next
PATTERNS = ("single_lever", "two_lever")

_RECORD = """
import sys
from pathlib import Path
from excap.station.sim import SimSessionOptions, run_sim_session
out, seed, seconds, cameras, pattern = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    sys.argv[5]
print(run_sim_session(SimSessionOptions(out_dir=out, duration_s=seconds, profile="wheel_loader_20t", pattern=pattern,
                                        seed=seed, cameras=cameras, width=160, height=120, fps=5.0,
                                        operator_id="op-loader", stale_timeout_s=1.0)))
"""


@dataclass(frozen=True)
class LoaderEpisodes:
    paths: tuple[Path, ...]  # the first has cameras
    wall_s: float  # how long recording them all took

    @property
    def with_cameras(self) -> Path:
        return self.paths[0]


def record_loader_episodes(out: Path, seeds: tuple[int, ...] = LOADER_SEEDS,
                           seconds: float = LOADER_SECONDS) -> LoaderEpisodes:
    """Record one episode per seed at the same time, each in its own process; their paths in seed order."""
    started = time.monotonic()
    processes = [subprocess.Popen([sys.executable, "-c", _RECORD, str(out / f"seed{seed}"), str(seed), str(seconds),
                                   "2" if n == 0 else "0", PATTERNS[n % len(PATTERNS)]],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n, seed in enumerate(seeds)]
    paths = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=seconds + 120)
        assert process.returncode == 0, stderr
        paths.append(Path(stdout.strip().splitlines()[-1]))
    return LoaderEpisodes(tuple(paths), time.monotonic() - started)


@pytest.fixture(scope="session")
def loader_episodes(tmp_path_factory: pytest.TempPathFactory) -> LoaderEpisodes:
    """A few minutes of the simulated wheel loader's loading cycles, shared by read-only tests."""
    return record_loader_episodes(tmp_path_factory.mktemp("loader_episodes"))

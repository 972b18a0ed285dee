"""The counts of the fuzz and fault suites: runs them with pytest and prints their figures as JSON.

    python bench/fault_counts.py [--list] [PYTEST ARGS...]

The suites are every test file that counts fuzz inputs (`tried(` from tests/support/fuzzing.py) and the fault
suites beside them (kill -9 in every phase of a recording, full disks, journal cuts and bit flips, hostile episode
files). pytest runs them once with `EXCAP_TEST_REPORT` set; the figures the tests measured
(tests/support/report.py: inputs tried per fuzz target, kill -9 trials and the loss of each, journal cuts, ...)
are printed with the run's outcome (passed, failed, skipped) and its duration. `--list` prints the files only.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAULT_SUITES = ("tests/record/test_crash_phases.py", "tests/record/test_disk_full.py",
                "tests/episode/test_journal_damage.py", "tests/episode/test_hostile_episodes.py",
                "tests/delivery/test_serve_hostile.py")
_COUNTS_INPUTS = re.compile(r"^\s*tried\(", re.MULTILINE)
_OUTCOME = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")


def suite_files() -> list[str]:
    """The fuzz test files (those counting inputs) and the fault suites, relative to the repository."""
    fuzz = [path.relative_to(REPO).as_posix() for path in sorted((REPO / "tests").rglob("test_*.py"))
            if _COUNTS_INPUTS.search(path.read_text(encoding="utf-8"))]
    return sorted(set(fuzz) | {path for path in FAULT_SUITES if (REPO / path).exists()})


def run(files: list[str], extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="excap-fault-counts-") as folder:
        report = Path(folder) / "report.json"
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
                               "-o", "addopts=", *extra], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "EXCAP_TEST_REPORT": str(report)})
        seconds = time.monotonic() - began
        figures = json.loads(report.read_text()) if report.exists() else {}
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    outcome = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in _OUTCOME.findall(last)}
    return {"files": files, "exit_status": done.returncode, "outcome": outcome, "seconds": round(seconds, 1),
            "load_avg_1min_end": round(os.getloadavg()[0], 2), "figures": figures,
            **({"failures": failures(done.stdout)} if done.returncode != 0 else {})}


def failures(stdout: str) -> str:
    """The start of pytest's FAILURES section (what failed and where), or the end of the output."""
    begin = stdout.find("= FAILURES =")
    return stdout[begin:begin + 6000] if begin >= 0 else stdout[-4000:]


def main() -> None:
    args = sys.argv[1:]
    files = suite_files()
    if args[:1] == ["--list"]:
        print("\n".join(files))
        return
    load = round(os.getloadavg()[0], 2)
    result = run(files, args)
    print(json.dumps({"benchmark": "fault_counts", "load_avg_1min_start": load, **result}, indent=2))
    sys.exit(0 if result["exit_status"] == 0 else 1)


if __name__ == "__main__":
    main()

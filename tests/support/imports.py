"""Run the real `excap` command line in a fresh interpreter and see what it imported, or hide modules from it.

`modules_imported_by(*args)` runs `python -m excap ARGS` and returns the top-level names in `sys.modules` when
the interpreter exits (also after `--help`, which exits through SystemExit). `run_without(hidden, *args)` runs
`excap.cli.main.main(ARGS)` with the `hidden` modules set to None in `sys.modules`, which makes importing them
raise ImportError, as if their distribution were not installed.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

_LIST_MODULES = """\
import atexit, json, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
def dump():
    with open(out, "w") as handle:
        json.dump(sorted(sys.modules), handle)
atexit.register(dump)
sys.argv = ["excap", *args]
runpy.run_module("excap", run_name="__main__", alter_sys=True)
"""

_WITHOUT = """\
import json, sys
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from excap.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def modules_imported_by(*args: str, listing: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """(the finished process, top-level names of every module it had imported at exit)."""
    process = subprocess.run([sys.executable, "-c", _LIST_MODULES, str(listing), *args], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    names = json.loads(listing.read_text(encoding="utf-8"))
    return process, {name.split(".")[0] for name in names}


def run_without(hidden: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """`excap ARGS` in a fresh interpreter that cannot import the `hidden` modules."""
    return subprocess.run([sys.executable, "-c", _WITHOUT, json.dumps(list(hidden)), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)

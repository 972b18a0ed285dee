"""The environment of a child process that interrupts itself while it imports a given module (and swallows the
KeyboardInterrupt there, as some libraries do): see tests/support/interrupt_hook/sitecustomize.py."""

import os
from pathlib import Path

HOOK = Path(__file__).with_name("interrupt_hook")


def interrupting_import_of(module: str, marker: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the hook on PYTHONPATH; `marker` is written once the signal was sent."""
    base = dict(os.environ if env is None else env)
    paths = [str(HOOK), *[p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**base, "PYTHONPATH": os.pathsep.join(paths), "EXCAP_TEST_INTERRUPT_AT": module,
            "EXCAP_TEST_INTERRUPT_DONE": str(marker)}

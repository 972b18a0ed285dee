"""The excap command line as a subprocess argument list, run with this test's interpreter."""

import sys


def excap_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "excap", *args]

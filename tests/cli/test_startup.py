"""`excap --help`, `--version`, `inspect` and `validate` start without the heavy or optional libraries.

Each runs in a fresh interpreter; the modules it imported are read from `sys.modules` when it exits.
"""

from pathlib import Path

import pytest

from excap.core.extras import EXTRA_MODULES
from tests.support.imports import modules_imported_by

# Libraries that the quick commands must not load: every extra's modules, the ML stack, the web server, the CAN
# stack (python-can imports its MF4 reader, and with it asammdf, sympy and pandas, when asammdf is installed), and
# OpenCV (only commands that decode or encode images need it).
HEAVY = sorted({module for modules in EXTRA_MODULES.values() for module in modules}
               | {"torch", "sympy", "fastapi", "uvicorn", "starlette", "cantools", "can", "cv2"})


def _check(args: list[str], listing: Path) -> str:
    process, imported = modules_imported_by(*args, listing=listing)
    assert process.returncode == 0, process.stderr
    assert process.stderr == "", process.stderr
    assert "excap" in imported  # the listing saw the command run
    assert sorted(imported & set(HEAVY)) == []
    return process.stdout


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    out = _check(["--help"], tmp_path / "modules.json")
    assert out.startswith("usage: excap")
    for command in ("record", "inspect", "export", "push", "plot", "node", "station"):
        assert f"    {command}" in out


def test_version_imports_no_heavy_module(tmp_path: Path) -> None:
    from excap import __version__

    assert _check(["--version"], tmp_path / "modules.json").strip() == f"excap {__version__}"


@pytest.mark.parametrize("command", [["replay", "--help"], ["export", "--help"], ["can", "import", "--help"]])
def test_subcommand_help_imports_no_heavy_module(tmp_path: Path, command: list[str]) -> None:
    assert _check(command, tmp_path / "modules.json").startswith(f"usage: excap {' '.join(command[:-1])}")


def test_inspect_of_a_recorded_episode_imports_no_heavy_module(sim_episode: Path, tmp_path: Path) -> None:
    out = _check(["inspect", str(sim_episode)], tmp_path / "modules.json")
    assert out.startswith(f"episode   {sim_episode}")
    assert "\ncameras/" in out and "\ncan/can0 " in out


def test_validate_of_a_recorded_episode_imports_no_heavy_module(sim_episode: Path, tmp_path: Path) -> None:
    assert _check(["validate", str(sim_episode)], tmp_path / "modules.json") == f"{sim_episode}: valid\n"


def test_the_listing_sees_heavy_imports(tmp_path: Path) -> None:
    """The same check catches a command that does import them (here `bench safety` runs the CAN stack)."""
    process, imported = modules_imported_by("bench", "safety", "--losses", "2", listing=tmp_path / "modules.json")
    assert process.returncode == 0, process.stderr
    assert {"can", "cantools"} <= imported

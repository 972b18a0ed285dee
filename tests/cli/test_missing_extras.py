"""A command whose extra is not installed fails with one line naming the extra (exit 2), before doing any work.

Each command runs in a fresh interpreter that cannot import the extra's modules (they are None in sys.modules,
so importing them raises ImportError as if their distribution were not installed).
"""

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from excap.core.errors import MissingExtraError
from excap.core.extras import EXTRA_MODULES, require_extra
from tests.support.imports import run_without

ROS_HINT = " (or source a ROS 2 distribution's setup.bash)"

CASES = [  # (hidden modules, arguments, command as named in the error, extra)
    (("pyarrow",), ["export", "{dir}", "--format", "lerobot", "--out", "{out}"], "export", "exports"),
    (("av",), ["export", "{dir}", "--format", "robomimic", "--out", "{out}"], "export", "exports"),
    (("skimage",), ["export", "{dir}", "--format", "robomimic", "--out", "{out}", "--blur-faces"], "export",
     "exports"),
    (("boto3", "botocore"), ["push", "{dir}", "s3://bucket/prefix"], "push", "delivery"),
    (("boto3", "botocore"), ["pull", "s3://bucket/prefix", "{dir}"], "pull", "delivery"),
    (("boto3", "botocore"), ["upload", "{dir}", "s3://bucket/prefix", "--once"], "upload", "delivery"),
    (("pyarrow",), ["serve", "{dir}", "--port", "0"], "serve", "delivery"),
    (("matplotlib",), ["plot", "{episode}", "--out", "{out}.png"], "plot", "review"),
    (("asammdf",), ["can", "import", "{dir}/log.mf4", "--out", "{out}.h5"], "can import", "mf4"),
    (("asammdf",), ["can", "export", "{episode}", "--out", "{out}.MF4"], "can export", "mf4"),
    (("foxglove",), ["convert", "{episode}", "--to", "mcap", "--out", "{out}.mcap"], "convert", "viewers"),
    (("mcap_ros2",), ["convert", "{dir}/bag.mcap", "--to", "episode", "--map", "{dir}/map.yaml"], "convert",
     "viewers"),
    (("rclpy",), ["node", "--sim", "--out", "{dir}"], "node", "ros"),
    (("rclpy",), ["replay", "{episode}", "--ros"], "replay --ros", "ros"),
]


@pytest.mark.parametrize(("hidden", "args", "command", "extra"), CASES,
                         ids=[f"{case[2]}-{case[0][0]}" for case in CASES])
def test_missing_extra_is_one_line_naming_it(sim_episode: Path, tmp_path: Path, hidden: tuple[str, ...],
                                             args: list[str], command: str, extra: str) -> None:
    out = tmp_path / "out"
    process = run_without(hidden, *[a.format(dir=tmp_path, out=out, episode=sim_episode) for a in args])
    hint = ROS_HINT if extra == "ros" else ""
    assert process.stderr == f"excap: error: 'excap {command}' needs the {extra} extra: pip install " \
                             f"'excap[{extra}]'{hint}\n"
    assert process.returncode == 2
    assert process.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("command", [["index", "{dir}"], ["list", "{dir}"], ["ledger", "{dir}"]])
def test_a_postgresql_catalogue_without_the_fleet_extra_is_one_line(tmp_path: Path, command: list[str]) -> None:
    url = "postgresql://excap@127.0.0.1:9/fleet"
    process = run_without(("psycopg",), *[a.format(dir=tmp_path) for a in command], "--catalog", url)
    assert process.stderr == ("excap: error: a postgresql:// catalogue needs the fleet extra: pip install "
                              "'excap[fleet]'\n")
    assert process.returncode == 2 and process.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_the_same_commands_get_past_the_check_with_the_extra(sim_episode: Path, tmp_path: Path) -> None:
    """Control: with nothing hidden, `plot` and `can export` to .mf4 run (the check is not always failing)."""
    png, mf4 = tmp_path / "signals.png", tmp_path / "frames.mf4"
    plot = run_without((), "plot", str(sim_episode), "--out", str(png))
    assert plot.returncode == 0, plot.stderr
    can = run_without((), "can", "export", str(sim_episode), "--out", str(mf4))
    assert can.returncode == 0, can.stderr
    assert png.stat().st_size > 0 and mf4.stat().st_size > 0


def test_require_extra_in_process() -> None:
    require_extra("plot", "review")  # installed here: no error
    with pytest.raises(MissingExtraError, match=r"^'excap x' needs the mf4 extra: pip install 'excap\[mf4\]'$"):
        require_extra("x", "mf4", "excap_no_such_module")
    with pytest.raises(ValueError, match="unknown extra"):
        require_extra("x", "no-such-extra")


def _requirements() -> list[Requirement]:
    return [Requirement(text) for text in importlib.metadata.requires("excap") or []]


def test_every_extra_is_declared_and_the_base_install_has_none_of_them() -> None:
    metadata = importlib.metadata.metadata("excap")
    assert set(EXTRA_MODULES) | {"all", "dev"} <= set(metadata.get_all("Provides-Extra") or [])
    base = {r.name.lower() for r in _requirements() if r.marker is None}
    extras_only = {"pyarrow", "pandas", "av", "scikit-image", "boto3", "asammdf", "matplotlib", "torch", "sympy"}
    assert base & extras_only == set()
    assert {"numpy", "h5py", "python-can", "cantools", "opencv-python-headless", "fastapi", "uvicorn"} <= base


def test_all_has_every_extra_but_ros_and_dev_pulls_them() -> None:
    def names(extra: str) -> set[str]:
        return {r.name.lower() for r in _requirements() if r.marker is not None and r.marker.evaluate({"extra": extra})}

    assert names("all") == (names("exports") | names("delivery") | names("mf4") | names("review") | names("fleet")
                            | names("viewers"))
    assert not names("all") & names("ros")
    dev_self = [r for r in _requirements() if r.name == "excap" and r.marker.evaluate({"extra": "dev"})]
    assert [sorted(r.extras) for r in dev_self] == [["delivery", "exports", "fleet", "mf4", "review", "viewers"]]

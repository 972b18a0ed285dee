"""`excap can import --profile`: the machine profile decides an imported log's machine kind, model, /control columns
and (without --dbc) its decoding; `--set machine_kind=KIND` alone picks that kind's profile for the kind and
columns; neither gives the default profile's. Run on the CAN traffic of a simulated wheel loader, exported as a
candump log."""

import subprocess
from pathlib import Path

import h5py
import pytest

from excap.convert.can_log_export import export_can_log
from excap.convert.can_logs import import_can_log, import_profile
from excap.core.errors import ConfigError
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from excap.schemas.machine_kinds import MACHINE_KINDS
from tests.support.commands import excap_command
from tests.support.paths import REPO

LOADER_FUNCTIONS = ["lift", "tilt", "steer", "throttle", "brake", "direction"]
EXCAVATOR_FUNCTIONS = ["boom", "arm", "bucket", "swing", "travel_left", "travel_right"]


@pytest.fixture(scope="module")
def loader_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a simulated wheel loader's J1939 traffic as a candump log."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    episode = run_sim_session(SimSessionOptions(out_dir=tmp_path_factory.mktemp("loader"), profile="wheel_loader_20t",
                                                duration_s=1.0, cameras=0))
    log = tmp_path_factory.mktemp("log") / "loader.log"
    assert export_can_log(episode, log) > 100
    return log


def attrs_and_commands(path: Path) -> tuple[dict, list[str]]:
    with h5py.File(path, "r") as f:
        return dict(f.attrs), [str(n) for n in f["control/commands"].attrs["names"]]


def test_the_profile_decides_kind_model_functions_and_decoding(loader_log: Path, tmp_path: Path) -> None:
    path = import_can_log(loader_log, tmp_path / "loader.h5", profile="wheel_loader_20t", site="yard-2")
    assert validate_episode(path) == []
    attrs, functions = attrs_and_commands(path)
    assert attrs["machine_kind"] == "wheel_loader" and attrs["machine_model"] == "wheel-loader-20t"
    assert attrs["profile"] == "wheel_loader_20t" and attrs["site"] == "yard-2"
    assert functions == LOADER_FUNCTIONS
    with EpisodeReader(path) as reader:  # decoded with the profile's DBCs: the loader's own state vector
        assert reader.state_signals() == list(MACHINE_KINDS["wheel_loader"].state_signals)
    with h5py.File(path, "r") as f:
        assert "wheel_loader_j1939.dbc" in f["can/can0"].attrs["dbc"]


def test_machine_kind_alone_picks_its_profile_for_kind_and_functions(loader_log: Path, tmp_path: Path) -> None:
    attrs, functions = attrs_and_commands(import_can_log(loader_log, tmp_path / "kind.h5",
                                                         machine_kind="wheel_loader"))
    assert attrs["machine_kind"] == "wheel_loader" and functions == LOADER_FUNCTIONS
    assert attrs["profile"] == "" and attrs["machine_model"] == "unknown"  # implied: no claim about the model
    with h5py.File(tmp_path / "kind.h5", "r") as f:
        assert "decoded" not in f["can/can0"]  # no DBC given, none implied


def test_neither_gives_the_default_profiles_kind(loader_log: Path, tmp_path: Path) -> None:
    attrs, functions = attrs_and_commands(import_can_log(loader_log, tmp_path / "plain.h5"))
    assert attrs["machine_kind"] == "excavator" and functions == EXCAVATOR_FUNCTIONS and attrs["profile"] == ""


def test_a_kind_that_contradicts_the_profile_or_is_unknown_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"machine_kind 'excavator' contradicts profile wheel_loader_20t "
                                          r"\(kind wheel_loader\)"):
        import_profile("wheel_loader_20t", "excavator")
    with pytest.raises(ConfigError, match="machine_kind must be one of excavator, wheel_loader, not 'crane'"):
        import_profile(None, "crane")
    with pytest.raises(ConfigError, match="machine profile 'dozer_9t' not found"):
        import_profile("dozer_9t", None)
    assert import_profile(None, None).profile.name == "excavator_20t"


def test_cli_profile_option(loader_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.h5"
    result = subprocess.run(excap_command("can", "import", str(loader_log), "--out", str(out), "--profile",
                                          "wheel_loader_20t"), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and "decoded" in result.stderr
    assert attrs_and_commands(out)[0]["machine_kind"] == "wheel_loader"
    refused = subprocess.run(excap_command("can", "import", str(loader_log), "--out", str(tmp_path / "no.h5"),
                                           "--profile", "wheel_loader_20t", "--set", "machine_kind=excavator"),
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert refused.returncode == 2 and not (tmp_path / "no.h5").exists()
    assert refused.stderr.strip().splitlines() == [
        "excap: error: machine_kind 'excavator' contradicts profile wheel_loader_20t (kind wheel_loader)"]

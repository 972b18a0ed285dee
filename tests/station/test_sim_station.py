"""One simulated station for every entry path: `record --sim`, `station --sim`, `node --sim` and the tests build it
with `simulated_station` and run it with `StationRuntime`; the same certification policy and the same safety
(neutral on a stale input, re-armed by the scripted operator) hold in each."""

import dataclasses
import threading
from pathlib import Path

import h5py
import pytest
import yaml

from excap.core.errors import ConfigError
from excap.drivers.machine.profiles import load_profile
from excap.ros.config import NodeSettings, node_station
from excap.station.app import RunningStation
from excap.station.certification import CertificationRefused, start_certified
from excap.station.runtime import StationRuntime
from excap.station.sim import SimSessionOptions, run_sim_session, simulated_station
from tests.support import report
from tests.support.sim_drill import STALL, LinkWatch, check_drill
from tests.support.station import certify
from tests.support.waiting import wait_for


def drill_options(out_dir: Path, **changes: object) -> SimSessionOptions:
    return SimSessionOptions(out_dir=out_dir, duration_s=None, cameras=1, width=160, height=120, fps=10,
                             joystick_stalls=(STALL,), **changes)  # type: ignore[arg-type]


def restored_and_flowing(watch: LinkWatch, runtime: StationRuntime) -> bool:
    command = runtime.command
    return watch.restored.is_set() and command is not None and command.enabled


def test_record_sim_neutralises_a_stale_input_and_restores_commands(tmp_path):
    """`excap record --sim`'s run path: `run_sim_session`."""
    stop = threading.Event()
    watch = LinkWatch()
    runtimes: list[StationRuntime] = []

    def opened(runtime: StationRuntime) -> None:
        runtime.subscribe(event=watch)
        runtimes.append(runtime)

    result: list[Path] = []
    worker = threading.Thread(target=lambda: result.append(run_sim_session(drill_options(tmp_path), stop,
                                                                            on_open=opened)))
    worker.start()
    try:
        wait_for(lambda: runtimes and restored_and_flowing(watch, runtimes[0]), message="commands restored")
    finally:
        stop.set()
        worker.join()
    drill = check_drill(result[0])
    if drill.to_neutral_ms is not None:
        report.record("sim drill", "record --sim: input stale -> neutral event (ms)", round(drill.to_neutral_ms, 1))
    report.record("sim drill", "record --sim: input back -> commands restored (s)", round(drill.to_restore_s, 2))


def run_drill(config, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Run a station config as the station does (devices open, then an episode), through one stall."""
    running = RunningStation.start(config, host=None)
    watch = LinkWatch()
    running.runtime.subscribe(event=watch)
    try:
        start_certified(running.runtime)
        wait_for(lambda: restored_and_flowing(watch, running.runtime), message="commands restored")
    finally:
        path = running.stop()
    assert path is not None
    return path


def test_station_sim_neutralises_a_stale_input_and_restores_commands(tmp_path):
    """`excap station --sim`'s station: the simulated station run by RunningStation, episode from the controller."""
    drill = check_drill(run_drill(simulated_station(drill_options(tmp_path)), tmp_path))
    report.record("sim drill", "station --sim: input back -> commands restored (s)", round(drill.to_restore_s, 2))


def test_node_sim_station_neutralises_a_stale_input_and_restores_commands(tmp_path):
    """`excap node --sim` runs `node_station(...)` in a StationRuntime: the same station, stalled the same way."""
    config = node_station(NodeSettings(sim=True, cameras=1, width=160, height=120, fps=10), None, tmp_path)
    operator = dataclasses.replace(config.joysticks[0], options={**config.joysticks[0].options, "stalls": (STALL,)})
    check_drill(run_drill(dataclasses.replace(config, joysticks=[operator]), tmp_path))


def test_every_entry_path_builds_the_same_station(tmp_path):
    options = SimSessionOptions(out_dir=tmp_path, cameras=1, width=160, height=120, fps=10, operator_id="anonymous",
                                site="", task="")
    from_options = simulated_station(options)
    from_node = node_station(NodeSettings(sim=True, cameras=1, width=160, height=120, fps=10,
                                          machine_id="sim-excavator-01"), None, tmp_path)
    same = ("profile", "pattern", "machine_id", "simulated_machine", "joysticks", "axis_inputs", "button_inputs",
            "cameras", "command", "session")
    for name in same:
        assert getattr(from_node, name) == getattr(from_options, name), name
    assert [(c.name, c.interface) for c in from_node.cans] == [(c.name, c.interface) for c in from_options.cans]
    assert from_options.session["certification_policy"] == "mark"


def test_the_builder_refuses_a_machine_the_simulator_cannot_drive(tmp_path):
    profile = yaml.safe_load(load_profile("wheel_loader_20t").source.read_text())
    profile["kind"] = "dozer"
    dozer = tmp_path / "dozer.yaml"
    dozer.write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError, match=r"dozer\.yaml: no simulated machine of kind 'dozer' \(known: excavator, "
                                          r"wheel_loader\)"):
        simulated_station(SimSessionOptions(out_dir=tmp_path, profile=str(dozer)))
    with pytest.raises(ConfigError, match="no simulated machine of kind 'dozer'"):
        node_station(NodeSettings(sim=True, profile=str(dozer)), None, tmp_path)
    with pytest.raises(ConfigError, match=r"profile wheel_loader_20t has no pattern 'iso' \(has: single_lever, "
                                          r"two_lever\)"):
        simulated_station(SimSessionOptions(out_dir=tmp_path, profile="wheel_loader_20t", pattern="iso"))
    with pytest.raises(ConfigError, match="certification_policy must be one of"):
        SimSessionOptions(out_dir=tmp_path, certification_policy="sometimes")


def test_record_sim_applies_the_certification_policy(tmp_path):
    """Default: the uncertified scripted operator is recorded, marked; a certified one is recorded as certified;
    under policy refuse an uncertified operator is not recorded at all."""
    short = {"duration_s": 0.3, "cameras": 0}
    marked = run_sim_session(SimSessionOptions(out_dir=tmp_path, **short))  # type: ignore[arg-type]
    with h5py.File(marked, "r") as f:
        assert f.attrs["certification"].startswith("UNCERTIFIED: operator 'sim-operator' is not in the operator")
    certify(tmp_path, "op-7")
    certified = run_sim_session(SimSessionOptions(out_dir=tmp_path, operator_id="op-7",  # type: ignore[arg-type]
                                                  certification_policy="refuse", **short))
    with h5py.File(certified, "r") as f:
        assert f.attrs["certification"].startswith("cpcs-a59 #op-7-cert") and f.attrs["operator_id"] == "op-7"
    before = sorted(tmp_path.glob("*.h5"))
    with pytest.raises(CertificationRefused, match="not recording: operator 'op-8' is not in the operator registry"):
        run_sim_session(SimSessionOptions(out_dir=tmp_path, operator_id="op-8",  # type: ignore[arg-type]
                                          certification_policy="refuse", **short))
    assert sorted(tmp_path.glob("*.h5")) == before

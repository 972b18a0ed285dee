"""The command-line tools around the recorder, run as a user would run them."""

import json
import math
import os
import subprocess
import tty

import pytest
import yaml

from excap.drivers.joystick.calibration import load_calibration
from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig
from excap.station.safety_bench import run_safety_bench
from tests.support.commands import excap_command
from tests.support.paths import REPO


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_check_config_reports_each_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    data = yaml.safe_load((REPO / "examples/station_sim.yaml").read_text())
    data["machine"]["pattern"] = "diagonal"
    data["joysticks"][0]["type"] = "usb"
    broken.write_text(yaml.safe_dump(data))
    result = run("check-config", str(REPO / "examples/station_sim.yaml"), str(broken))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{REPO / 'examples/station_sim.yaml'}: ok")
    assert any(line.startswith(f"{broken}: machine.pattern:") for line in lines)
    assert any(line.startswith(f"{broken}: joysticks[0].type:") for line in lines)


def test_record_from_a_station_config(tmp_path):
    result = run("record", "--config", str(REPO / "examples/station_sim.yaml"), "--duration", "2", "--out",
                 str(tmp_path), "--operator", "op-77", "--quiet")
    assert result.returncode == 0, result.stderr
    episode = tmp_path / result.stdout.strip().splitlines()[-1].split("/")[-1]
    inspected = json.loads(run("inspect", str(episode), "--json").stdout)
    assert inspected["metadata"]["operator_id"] == "op-77"
    streams = {s["stream"]: s for s in inspected["streams"]}
    assert streams["control"]["samples"] > 50 and streams["can/can0/decoded/BJM1"]["samples"] > 50


def test_joystick_monitor_with_the_sim_device():
    monitor = run("joystick", "monitor", "--type", "sim", "--duration", "1")
    assert monitor.returncode == 0, monitor.stderr
    assert "rate=" in monitor.stdout and "axis0=" in monitor.stdout


def test_joystick_calibrate_a_serial_joystick_on_a_pty(tmp_path):
    """The operator holds the sticks released, then sweeps them when told to: a serial peer plays the operator."""
    master, slave = os.openpty()
    tty.setraw(slave)
    phase = {"sweep": False}

    def state(index):
        if not phase["sweep"]:
            return (0.02, -0.01), (0,)
        return (math.sin(index * 0.2), 0.8 * math.cos(index * 0.2) - 0.1), (0,)

    peer = SerialPeer(master, SerialPeerConfig(rate_hz=100.0), state).start()
    out = tmp_path / "cal.yaml"
    process = subprocess.Popen(
        excap_command("joystick", "calibrate", "--type", "serial", "--set", f"port={os.ttyname(slave)}",
                      "--out", str(out), "--centre-s", "0.5", "--sweep-s", "1.5", "--deadband", "0.08"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "move every axis" in line:
                phase["sweep"] = True
                break
        stdout, stderr = process.communicate(timeout=60)
    finally:
        peer.stop()
        os.close(master)
        os.close(slave)
    assert process.returncode == 0, stderr
    assert f"saved {out}" in stdout
    calibration = load_calibration(out)
    first, second = calibration.axes.values()
    assert first.centre == pytest.approx(0.02, abs=0.002) and second.centre == pytest.approx(-0.01, abs=0.002)
    assert first.min == pytest.approx(-1.0, abs=0.05) and first.max == pytest.approx(1.0, abs=0.05)
    assert second.min == pytest.approx(-0.9, abs=0.05) and second.max == pytest.approx(0.7, abs=0.05)
    assert first.deadband == 0.08
    again = run("joystick", "calibrate", "--type", "sim", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_joystick_tool_errors_are_one_line():
    result = run("joystick", "monitor", "--type", "serial", "--set", "nonsense=1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("excap: error:")


def test_safety_bench_neutral_within_one_command_period():
    result = run_safety_bench(losses=9)
    assert result["losses"] == 9
    # Within one period on an idle machine (BENCHMARKS.md); the margin covers a busy CI host's scheduling.
    assert result["time_to_neutral_ms"]["p50"] < result["command_period_ms"] / 4
    assert result["time_to_neutral_ms"]["worst"] < 2 * result["command_period_ms"]
    assert set(result["by_kind_worst_ms"]) == {"stale", "unplug", "out_of_range"}
    cli = run("bench", "safety", "--losses", "3")
    assert cli.returncode == 0 and json.loads(cli.stdout)["losses"] == 3

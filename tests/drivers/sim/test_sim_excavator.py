import math

import cantools
import numpy as np
import pytest

from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import load_profile
from excap.drivers.sim.cameras import ViewRenderer
from excap.drivers.sim.excavator import ExcavatorModel, ExcavatorState, bucket_tip
from excap.drivers.sim.excavator_signals import excavator_message_values
from excap.drivers.sim.j1939_traffic import J1939TrafficGenerator
from excap.drivers.sim.operator import ScriptedOperator
from excap.schemas import schema_file

DBC = schema_file("can/excavator_j1939.dbc")


def run(model: ExcavatorModel, seconds: float, commands, enabled=True):
    for _ in range(int(seconds / 0.01)):
        model.step(0.01, commands, enabled)
    return model.state


def test_joints_respect_hydraulic_rate_limits_and_joint_limits():
    model = ExcavatorModel()
    before = model.state.boom
    state = run(model, 1.0, (1, 0, 0, 0, 0, 0))
    assert 0 < state.boom - before <= model.geometry.boom.max_rate * 1.0
    state = run(model, 20.0, (1, -1, -1, 0, 0, 0))
    assert state.boom == pytest.approx(model.geometry.boom.high)
    assert state.arm == pytest.approx(model.geometry.arm.high)
    assert state.bucket == pytest.approx(model.geometry.bucket.high)
    assert state.boom_rate == 0.0


def test_disabled_machine_does_not_move():
    model = ExcavatorModel()
    start = model.state
    state = run(model, 2.0, (1, 1, 1, 1, 1, 1), enabled=False)
    assert (state.boom, state.arm, state.bucket, state.swing, state.x) == \
        (start.boom, start.arm, start.bucket, start.swing, start.x)


def test_swing_and_travel():
    model = ExcavatorModel()
    state = run(model, 3.0, (0, 0, 0, 1, 0, 0))
    assert state.swing > 1.0  # ~1 rad/s after the acceleration ramp
    state = run(model, 3.0, (0, 0, 0, 0, 1, 1))
    assert state.x > 2.0 and abs(state.heading) < 1e-9


def test_scripted_operator_completes_dig_dump_cycles_in_both_patterns():
    for pattern in ("iso", "sae"):
        mapper = CommandMapper(load_profile(), pattern)
        model, operator = ExcavatorModel(), ScriptedOperator(mapper, seed=3)
        phases = set()
        for _ in range(6000):
            sample = operator.sample(model.state)
            command = mapper.command(sample.axes, sample.buttons)
            model.step(0.01, command.values, command.enabled)
            phases.add(sample.phase)
        assert model.state.dumped_loads >= 3, pattern
        assert {"return", "dig", "swing_loaded", "dump"} <= phases


def test_j1939_traffic_rates_and_content_decode_with_the_dbc():
    generator = J1939TrafficGenerator(DBC, start_ns=0, values=excavator_message_values, seed=1)
    database = cantools.database.load_file(str(DBC))
    state = ExcavatorState(boom=0.5, engine_rpm=1650.0, swing=math.radians(45))
    frames = []
    for t_ms in range(0, 2000):
        frames += generator.due(t_ms * 1_000_000, state)
    assert len(frames) / 2.0 >= 500  # at least ~500 frames/s in all
    ids = [f.arbitration_id for f in frames]
    eec1 = database.get_message_by_name("EEC1")
    assert ids.count(eec1.frame_id) == pytest.approx(200, abs=2)
    decoded = database.decode_message(eec1.frame_id, frames[ids.index(eec1.frame_id)].data)
    assert decoded["EngSpeed"] == pytest.approx(1650, abs=10)
    boom = database.get_message_by_name("BoomSSI2")
    pitch = database.decode_message(boom.frame_id, frames[ids.index(boom.frame_id)].data)["PitchAngleExRange"]
    assert pitch == pytest.approx(math.degrees(0.5), abs=0.2)
    swing = database.get_message_by_name("SwingStatus")
    assert database.decode_message(swing.frame_id, frames[ids.index(swing.frame_id)].data)["SwingAngle"] == \
        pytest.approx(45, abs=0.02)


def test_side_camera_shows_the_boom_position():
    renderer = ViewRenderer("side", 320, 240)
    low = renderer.render(ExcavatorState(boom=-0.3), 0, "side")
    high = renderer.render(ExcavatorState(boom=0.9), 0, "side")
    assert low.shape == (240, 320, 3)
    yellow = np.array([20, 190, 240])

    def yellow_top_row(image):
        mask = np.all(np.abs(image.astype(int) - yellow) < 30, axis=2)
        return np.argwhere(mask)[:, 0].min()

    assert yellow_top_row(high) < yellow_top_row(low) - 20  # raised boom reaches higher in the image


def test_bucket_tip_kinematics():
    state = ExcavatorState(boom=0.0, arm=0.0, bucket=0.0)
    x, z = bucket_tip(state, ExcavatorModel().geometry)
    assert x == pytest.approx(0.6 + 5.7 + 2.9 + 1.5)
    assert z == pytest.approx(2.0)


def test_scripted_operator_re_enables_from_neutral_when_commands_are_neutralised():
    from dataclasses import replace

    mapper = CommandMapper(load_profile(), "iso")
    operator = ScriptedOperator(mapper, seed=1)
    state = ExcavatorState(t=5.0)
    assert operator.sample(state).buttons[0] == 1
    samples = [operator.sample(replace(state, t=5.0 + 0.07 * i), commands_blocked=i < 4) for i in range(20)]
    enable = [s.buttons[0] for s in samples]
    assert enable[:5] == [0] * 5  # released first (0.3 s) ...
    assert all(a == 0.0 for s in samples[:9] for a in s.axes)  # ... sticks centred throughout ...
    assert enable[5:9] == [1] * 4  # ... then enable again while still centred
    assert samples[-1].phase != "rearm"  # then back to work

"""The table of simulated machine kinds: each kind agrees with its profile, answers every message of its DBC, and
runs as a device driven through its cab joysticks' frames."""

import can
import cantools
import numpy as np
import pytest

from excap.core.errors import ConfigError
from excap.drivers.machine.profiles import PROFILES_DIR, load_profile
from excap.drivers.sim.j1939_traffic import J1939TrafficGenerator
from excap.drivers.sim.machine import SimulatedMachine
from excap.drivers.sim.machines import SIM_MACHINES, sim_machine
from tests.support.waiting import wait_for

PROFILES = {path.stem: load_profile(path.stem) for path in sorted(PROFILES_DIR.glob("*.yaml"))}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_has_a_simulated_machine_that_agrees_with_it(name):
    profile = PROFILES[name]
    kind = sim_machine(profile.kind)
    assert kind.functions == profile.functions
    assert kind.cab == profile.cab_joysticks  # the machine's own wiring is what the profile says it is
    assert profile.dbc_paths[0] == kind.dbc and kind.dbc.exists()  # the profile lists the machine's DBC first


@pytest.mark.parametrize("kind", sorted(SIM_MACHINES))
def test_every_kind_answers_every_message_of_its_dbc_and_renders_its_views(kind):
    entry = SIM_MACHINES[kind]
    model = entry.model(seed=1)
    state = model.step(0.05, tuple(0.5 for _ in entry.functions), True)
    database = cantools.database.load_file(str(entry.dbc))
    periodic = [m for m in database.messages if m.cycle_time]
    generator = J1939TrafficGenerator(entry.dbc, 0, entry.message_values, seed=0)
    sent = {database.get_message_by_frame_id(f.arbitration_id).name
            for t_ms in range(1001) for f in generator.due(t_ms * 1_000_000, state)}
    assert sent == {m.name for m in periodic}
    for view in entry.views:
        image = entry.renderer(view, 96, 72).render(state, 0, view)
        assert image.shape == (72, 96, 3) and np.ptp(image) > 50
    assert [entry.camera_name(i) for i in range(3)] == [*entry.views, f"{entry.views[0]}2"]


def test_an_unknown_kind_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"no simulated machine of kind 'dozer' \(known: excavator, wheel_loader\)"):
        sim_machine("dozer")


def test_the_wheel_loader_is_driven_by_its_cab_joystick_frames_on_the_bus():
    """The command path's end: BJM1 frames as the profile's cab layout sends them move the simulated loader."""
    profile = load_profile("wheel_loader_20t")
    channel = "excap-loader-cab-test"
    with can.Bus(interface="virtual", channel=channel) as machine_bus, \
            can.Bus(interface="virtual", channel=channel) as station_bus:
        machine = SimulatedMachine(machine_bus, seed=0, kind="wheel_loader")
        machine.start()
        try:
            values = dict.fromkeys(profile.functions, 0.0) | {"lift": 1.0, "throttle": 1.0, "direction": 1.0,
                                                               "steer": 0.5}
            start_lift = machine.state.lift

            def send_and_check() -> bool:
                for frame in profile.cab_joysticks.frames(profile.functions, [values[f] for f in profile.functions],
                                                          enabled=True):
                    station_bus.send(frame)
                s = machine.state
                return s.speed > 0.3 and s.lift > start_lift + 0.05 and s.articulation > 0.05 and s.direction == 1

            wait_for(send_and_check, timeout=10, message="the loader drives forward, steers left and lifts")
            assert machine.state.commands[:4] == pytest.approx((1.0, 0.0, 0.5, 1.0), abs=0.01)
        finally:
            machine.stop()
        assert machine.guard.fault is None and machine.frames_sent > 100


@pytest.mark.parametrize("kind", sorted(SIM_MACHINES))
def test_frames_of_a_late_call_come_in_the_order_they_fell_due(kind):
    """A machine thread that runs late (a loaded host) sends what fell due meanwhile in that order, not the DBC's."""
    entry = SIM_MACHINES[kind]
    state = entry.model(seed=1).step(0.05, tuple(0.5 for _ in entry.functions), True)
    database = cantools.database.load_file(str(entry.dbc))
    on_time = J1939TrafficGenerator(entry.dbc, 0, entry.message_values, seed=3)
    expected = [database.get_message_by_frame_id(f.arbitration_id).name
                for t_ms in range(0, 1001) for f in on_time.due(t_ms * 1_000_000, state)]
    late = J1939TrafficGenerator(entry.dbc, 0, entry.message_values, seed=3)
    first_period_ms = min(m.cycle_time for m in database.messages if m.cycle_time)
    names = [database.get_message_by_frame_id(f.arbitration_id).name
             for f in late.due(first_period_ms * 1_000_000, state)]  # everything's first frame, in one call
    assert len(names) == len(set(names)) > 1
    assert names == [name for name in expected if name in names][:len(names)]

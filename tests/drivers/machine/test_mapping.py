import itertools

import numpy as np
import pytest

from excap.core.errors import ConfigError
from excap.drivers.machine.mapping import CommandMapper, shape_axis, unshape_axis
from excap.drivers.machine.profiles import load_profile


@pytest.fixture(scope="module")
def profile():
    return load_profile("excavator_20t")


@pytest.mark.parametrize("deadband,expo", [(0.0, 0.0), (0.05, 0.3), (0.1, 0.8)])
def test_unshape_inverts_shape(deadband, expo):
    for command in np.linspace(-1, 1, 41):
        assert shape_axis(unshape_axis(command, deadband, expo), deadband, expo) == pytest.approx(command, abs=1e-9)


def test_deadband_and_saturation():
    assert shape_axis(0.04, 0.05, 0.3) == 0.0
    assert shape_axis(-0.05, 0.05, 0.3) == 0.0
    assert shape_axis(1.7, 0.05, 0.3) == pytest.approx(1.0)
    assert shape_axis(-1.0, 0.05, 0.3) == pytest.approx(-1.0)
    assert 0 < shape_axis(0.5, 0.05, 0.3) < 0.5  # expo softens the middle


def test_iso_and_sae_give_same_machine_command_for_matching_stick_motions(profile):
    iso, sae = CommandMapper(profile, "iso"), CommandMapper(profile, "sae")
    buttons = [1, 0, 0]
    for values in itertools.product([-0.8, 0.0, 0.6], repeat=4):
        wanted = [*values, 0.3, -0.3]
        iso_sticks, sae_sticks = iso.sticks_for(wanted), sae.sticks_for(wanted)
        assert iso.command(iso_sticks, buttons).values == pytest.approx(wanted, abs=1e-9)
        assert sae.command(sae_sticks, buttons).values == pytest.approx(wanted, abs=1e-9)
    # The patterns really differ: boom is the right stick's Y in ISO and the left stick's Y in SAE.
    axes = profile.axes
    boom_only = [0.7, 0, 0, 0, 0, 0]
    assert iso.sticks_for(boom_only)[axes.index("right_y")] != 0
    assert sae.sticks_for(boom_only)[axes.index("left_y")] != 0
    assert iso.sticks_for(boom_only)[axes.index("left_y")] == 0


def test_same_stick_motion_means_different_functions_per_pattern(profile):
    iso, sae = CommandMapper(profile, "iso"), CommandMapper(profile, "sae")
    pull_left_stick_back = [0, -1.0, 0, 0, 0, 0]
    functions = profile.functions
    iso_cmd = iso.command(pull_left_stick_back, [1, 0, 0]).values
    sae_cmd = sae.command(pull_left_stick_back, [1, 0, 0]).values
    assert iso_cmd[functions.index("arm")] == pytest.approx(1.0)  # ISO: arm in
    assert sae_cmd[functions.index("boom")] == pytest.approx(1.0)  # SAE: boom up
    assert iso_cmd[functions.index("boom")] == 0.0


def test_released_enable_gives_neutral(profile):
    mapper = CommandMapper(profile, "iso")
    command = mapper.command([1, 1, 1, 1, 1, 1], [0, 1, 1])
    assert command.enabled is False
    assert command.values == (0.0,) * len(profile.functions)


def test_unknown_pattern_and_profile_are_config_errors(profile, tmp_path):
    with pytest.raises(ConfigError, match="no control pattern 'xyz'"):
        CommandMapper(profile, "xyz")
    with pytest.raises(ConfigError, match="not found"):
        load_profile("no-such-machine")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: excap.machine_profile\nkind: excavator\nmodel: x\nfunctions: [{name: boom}]\n"
                   "joystick: {axes: [a], buttons: [enable], enable_button: enable}\n"
                   "patterns: {iso: {functions: {boom: {axis: nope}}}}\n")
    with pytest.raises(ConfigError, match=r"patterns.iso.functions.boom.axis: unknown axis 'nope'"):
        load_profile(bad)


def test_wheel_loader_patterns_keep_function_meanings_and_fnr_buttons():
    loader = load_profile("wheel_loader_20t")
    assert loader.kind == "wheel_loader"
    assert loader.functions == ("lift", "tilt", "steer", "throttle", "brake", "direction")
    single, two = CommandMapper(loader, "single_lever"), CommandMapper(loader, "two_lever")
    enable, forward, reverse = (1, 0, 0, 0, 0), (1, 1, 0, 0, 0), (1, 0, 1, 0, 0)
    wanted = [0.5, -0.4, 0.3, 0.8, 0.0, 0.0]
    for mapper in (single, two):
        assert mapper.command(mapper.sticks_for(wanted), enable).values == pytest.approx(wanted, abs=1e-9)
        assert mapper.command(mapper.sticks_for(wanted), forward).values[-1] == 1.0
        assert mapper.command(mapper.sticks_for(wanted), reverse).values[-1] == -1.0
        assert mapper.command(mapper.sticks_for(wanted), (1, 1, 1, 0, 0)).values[-1] == 0.0
    # Tilt is lever 1 sideways in single-lever, lever 2 in two-lever; the episode sees "tilt" either way.
    assert single.sticks_for(wanted)[loader.axes.index("lever1_x")] != 0
    assert two.sticks_for(wanted)[loader.axes.index("lever2_y")] != 0
    layout = loader.cab_joysticks
    frames = layout.frames(loader.functions, [*wanted[:5], 1.0], True)
    assert len(frames) == 4


def test_sticks_beyond_full_travel_saturate_at_full_command():
    assert shape_axis(-1.7, 0.05, 0.3) == -1.0 and shape_axis(-1.0000001, 0.0, 0.0) == -1.0
    assert shape_axis(1.0, 0.05, 0.3) == 1.0


def test_sticks_for_leaves_unbound_axes_centred_and_refuses_a_wrong_command_count():
    loader = CommandMapper(load_profile("wheel_loader_20t"), "single_lever")
    sticks = loader.sticks_for([0.5, -0.5, 0.2, 0.4, 0.1, 1.0])  # lift, tilt, steer, throttle, brake, direction
    by_axis = dict(zip(loader.profile.axes, sticks, strict=True))
    assert by_axis["lever2_y"] == 0.0  # the single-lever pattern does not use lever 2
    assert by_axis["lever1_y"] < 0 < by_axis["lever1_x"] and by_axis["throttle_pedal"] > 0
    with pytest.raises(ValueError):
        loader.sticks_for([0.5, -0.5])


def test_a_button_function_with_only_a_positive_button(tmp_path):
    text = load_profile("wheel_loader_20t").source.read_text()
    path = tmp_path / "loader.yaml"
    path.write_text(text.replace("direction: {buttons: {positive: fnr_forward, negative: fnr_reverse}}",
                                 "direction: {buttons: {positive: fnr_forward}}"))
    mapper = CommandMapper(load_profile(path), "single_lever")
    buttons = dict.fromkeys(mapper.profile.buttons, 0) | {"enable": 1, "fnr_forward": 1, "fnr_reverse": 1}
    command = mapper.command([0.0] * 6, [buttons[b] for b in mapper.profile.buttons])
    assert command.values[mapper.profile.functions.index("direction")] == 1.0

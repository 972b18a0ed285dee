"""The machine kinds registry agrees with the profiles, the episode schema, the simulator and each kind's DBC."""

import cantools
import pytest

from excap.core.errors import ConfigError
from excap.drivers.machine.profiles import PROFILES_DIR, load_profile
from excap.drivers.sim.machines import SIM_MACHINES
from excap.episode.schema import load_episode_schema
from excap.episode.steps import default_state_signals
from excap.schemas.machine_kinds import MACHINE_KINDS, machine_kind


def shipped_profiles() -> list:
    return [load_profile(path) for path in sorted(PROFILES_DIR.glob("*.yaml"))]


def test_every_profile_kind_has_an_entry_and_every_entry_a_profile() -> None:
    kinds = {profile.kind for profile in shipped_profiles()}
    assert kinds == set(MACHINE_KINDS)
    assert set(SIM_MACHINES) <= set(MACHINE_KINDS)


def test_the_episode_schema_allows_exactly_the_registered_kinds() -> None:
    assert load_episode_schema(1)["root_attributes"]["machine_kind"]["enum"] == list(MACHINE_KINDS)


@pytest.mark.parametrize("kind", list(MACHINE_KINDS))
def test_state_and_joint_signals_are_messages_of_the_kinds_dbc(kind: str) -> None:
    entry = machine_kind(kind)
    profile = next(p for p in shipped_profiles() if p.kind == kind)
    database = cantools.database.Database(strict=False)
    for path in profile.dbc_paths:
        database.add_dbc_file(str(path))
    signals = {f"{m.name}.{s.name}" for m in database.messages for s in m.signals}
    joint_signals = {j.signal for j in entry.joints} | {j.relative_to for j in entry.joints if j.relative_to}
    assert set(entry.state_signals) | joint_signals <= signals
    assert len(set(entry.state_signals)) == len(entry.state_signals) and entry.joints
    assert default_state_signals(kind) == entry.state_signals


def test_an_unknown_kind_is_a_config_error_and_has_no_default_state() -> None:
    with pytest.raises(ConfigError, match=r"unknown machine kind 'dozer' \(known: excavator, wheel_loader\)"):
        machine_kind("dozer")
    assert default_state_signals("dozer") == ()

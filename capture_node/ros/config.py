"""The node's parameters, and the station the node runs.

A station config (`schema: excap.station`, see schemas/station.md) given as `station_config` names the
devices the node drives and, in its `ros:` section, the topics it records and what it publishes. Its
machine, session, out_dir and `ros:` values are the defaults of the matching parameters below;
parameters given on the command line or in a launch file (`-p name:=value`) still win. Without a
station config the node runs the built-in simulated station (`sim:=true`) or no devices at all
(recording topics only).
"""

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError
from excap.drivers.machine.profiles import DEFAULT_PROFILE, load_profile
from excap.station.config import CommandSettings, RosSettings, StationConfig

SESSION_PARAMETERS = ("operator", "site", "task", "notes", "certification_policy")
MAX_READY_WAIT_S = 60.0
NO_CONFIG_POLICY = "mark"  # the built-in stations record an operator missing from the registry, marked uncertified


@dataclass
class NodeSettings:
    """Every ROS parameter of `excap_recorder` (the station config path is `station_config`)."""

    sim: bool = False  # without a station config: the built-in simulated station
    out_dir: str = "episodes"
    operator: str = "anonymous"
    certification_policy: str = ""  # refuse | mark; "" = the station config's, else mark
    task: str = ""
    site: str = ""
    notes: str = ""
    machine_id: str = "machine-01"
    profile: str = DEFAULT_PROFILE
    pattern: str = ""  # "" = the profile's default; iso | sae
    cameras: int = 2  # cameras of the built-in simulated station
    width: int = 640
    height: int = 480
    fps: float = 30.0
    jpeg_quality: int = 90
    seed: int = 0
    joy_topics: list[str] = field(default_factory=list)  # "name=/topic" or "/topic"
    image_topics: list[str] = field(default_factory=list)
    compressed_image_topics: list[str] = field(default_factory=list)
    command_topic: str = ""  # sensor_msgs/JointState, names = machine functions
    publish_prefix: str = "/excap"
    publish_joy: bool = True
    publish_commands: bool = True
    publish_joint_states: bool = True
    publish_cameras: bool = True
    publish_diagnostics: bool = True
    diagnostics_period_s: float = 1.0
    stale_after_s: float = 2.0
    min_free_gb: float = 2.0
    auto_start: bool = False
    ready_wait_s: float = 5.0  # how long a start waits for the station's required devices
    foxglove_port: int = -1  # the Foxglove live view's port (-1: none, 0: any free port); needs the viewers extra
    foxglove_host: str = "127.0.0.1"

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        settings = cls()
        return {name: getattr(settings, name) for name in cls.parameter_names()}

    @property
    def session(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SESSION_PARAMETERS}


def station_defaults(config: StationConfig) -> dict[str, Any]:
    """The parameter values a station config supplies: machine, session, out_dir and its `ros:` section."""
    ros = config.ros or RosSettings()
    values: dict[str, Any] = {
        "out_dir": str(config.out_dir), "machine_id": config.machine_id, "profile": config.profile.name,
        "pattern": config.pattern, **{k: v for k, v in config.session.items() if k in SESSION_PARAMETERS},
        "joy_topics": list(ros.joy_topics), "image_topics": list(ros.image_topics),
        "compressed_image_topics": list(ros.compressed_image_topics), "command_topic": ros.command_topic,
        "publish_prefix": ros.publish_prefix,
    }
    for item in fields(RosSettings):
        if item.name.startswith("publish_") and item.name != "publish_prefix":
            values[item.name] = getattr(ros, item.name)
    return values


def node_station(settings: NodeSettings, config: StationConfig | None, out_dir: Path) -> StationConfig:
    """The station the node runs: the given config with the parameters applied, or a built-in one."""
    from excap.people.certification import canonical_policy

    if not 0 <= settings.ready_wait_s <= MAX_READY_WAIT_S:  # also refuses nan
        raise ConfigError(f"parameter ready_wait_s: must be between 0 and {MAX_READY_WAIT_S:g} s, "
                          f"not {settings.ready_wait_s!r}")
    if settings.certification_policy:
        try:
            canonical_policy(settings.certification_policy)
        except ValueError as exc:
            raise ConfigError(f"parameter certification_policy: {exc}") from exc
    if config is not None:
        if settings.sim:
            raise ConfigError(f"{config.path}: sim:=true runs the built-in simulated station; a station config "
                              "simulates with machine.simulated: true and joysticks of type sim")
        if settings.profile != config.profile.name:
            raise ConfigError(f"{config.path}: the profile is the station config's machine.profile "
                              f"({config.profile.name}), not {settings.profile!r}")
        return dataclasses.replace(config, out_dir=out_dir, machine_id=settings.machine_id,
                                   pattern=(settings.pattern or config.pattern).lower(),
                                   session={**config.session, **{k: v for k, v in settings.session.items() if v}})
    if settings.sim:
        return sim_station(settings, out_dir)
    profile = load_profile(settings.profile)
    return StationConfig(path=Path("<topics only>"), station_id="ros", out_dir=out_dir, profile=profile,
                         pattern=(settings.pattern or profile.default_pattern).lower(),
                         machine_id=settings.machine_id, simulated_machine=False, session=_unregistered(settings),
                         joysticks=[], axis_inputs={}, button_inputs={}, cans=[], cameras=[],
                         command=CommandSettings())


def _unregistered(settings: NodeSettings) -> dict[str, str]:
    """Session of a station without a config file: an operator missing from the registry is recorded, marked
    uncertified unless `certification_policy` says `refuse` (a station config chooses its own)."""
    return {"certification_policy": NO_CONFIG_POLICY, **{k: v for k, v in settings.session.items() if v}}


def sim_station(settings: NodeSettings, out_dir: Path) -> StationConfig:
    """The simulated station (`excap.station.sim.simulated_station`) with the node's parameters: the scripted
    operator as joystick `operator`, the simulated machine of the profile's kind on a private virtual bus `can0`,
    `settings.cameras` rendered cameras. Session values left empty stay empty; the policy is `mark` unless
    `certification_policy` says `refuse`."""
    from excap.station.sim import SimSessionOptions, simulated_station

    return simulated_station(SimSessionOptions(
        out_dir=out_dir, duration_s=None, pattern=settings.pattern or None, cameras=settings.cameras,
        width=settings.width, height=settings.height, fps=settings.fps, jpeg_quality=settings.jpeg_quality,
        seed=settings.seed, profile=settings.profile, machine_id=settings.machine_id, operator_id=settings.operator,
        site=settings.site, task=settings.task, notes=settings.notes,
        certification_policy=settings.certification_policy or NO_CONFIG_POLICY,
        station_id="sim"))

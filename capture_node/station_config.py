"""The station configuration file: machine, joysticks, CAN buses, cameras, output folder.

`load_station_config` checks everything in one pass and raises one ConfigError whose lines each
name the file and the key (`station.yaml: joysticks[1].port: missing`), so `excap check-config`
can report every mistake at once. A reference of every key is in `schemas/station.md`.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from capture_node.errors import ConfigError
from drivers.camera.opencv_camera import CameraConfig
from drivers.can.bus_config import CanBusConfig
from drivers.profiles import MachineProfile, load_profile

JOYSTICK_TYPES = ("hid", "serial", "j1939", "sim")
_TOP_KEYS = ("schema", "schema_version", "station", "machine", "session", "joysticks", "inputs", "can", "cameras",
             "command", "ros")
_ROS_KEYS = ("joy_topics", "image_topics", "compressed_image_topics", "command_topic", "publish_prefix", "publish")
_PUBLISH_KEYS = ("joy", "commands", "joint_states", "cameras", "diagnostics")
SIM_CAMERA_PREFIX = "sim:"  # camera source `sim:<view>`: a view rendered from the simulated machine


@dataclass(kw_only=True)
class JoystickEntry:
    """One operator input device. `axes` / `buttons` name what the device reports, in order."""

    name: str
    type: str
    axes: tuple[str, ...]
    buttons: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)  # the driver's own keys (port, device, ...)
    calibration: Path | None = None
    bus: str | None = None  # j1939: the CAN bus (name of a `can` entry) it is read from

    @property
    def periodic(self) -> bool:
        """Reports at a fixed rate, so silence means stale (HID devices only report changes)."""
        return self.type != "hid"


@dataclass(frozen=True)
class InputSource:
    device: str
    index: int


@dataclass(kw_only=True)
class CommandSettings:
    bus: str | None = None  # the CAN bus the cab-joystick frames are sent on; None: commands are not sent
    rate_hz: float | None = None  # default: the profile's cab_joysticks rate
    stale_timeout_s: float = 0.1


@dataclass(kw_only=True)
class RosSettings:
    """The `ros:` section: what the ROS 2 node records from topics and what it publishes."""

    joy_topics: tuple[str, ...] = ()  # "name=/topic" or "/topic", sensor_msgs/Joy -> /joystick/<name>
    image_topics: tuple[str, ...] = ()  # sensor_msgs/Image -> /cameras/<name>
    compressed_image_topics: tuple[str, ...] = ()  # sensor_msgs/CompressedImage -> /cameras/<name>
    command_topic: str = ""  # sensor_msgs/JointState of machine-function commands -> /control
    publish_prefix: str = "/excap"
    publish_joy: bool = True  # Joy per joystick device
    publish_commands: bool = True  # the command link's commands (JointState)
    publish_joint_states: bool = True  # machine state: the simulated machine, or decoded CAN
    publish_cameras: bool = True  # CompressedImage per camera
    publish_diagnostics: bool = True


@dataclass(kw_only=True)
class StationConfig:
    path: Path
    station_id: str
    out_dir: Path
    profile: MachineProfile
    pattern: str
    machine_id: str
    simulated_machine: bool
    session: dict[str, str]
    joysticks: list[JoystickEntry]
    axis_inputs: dict[str, InputSource]
    button_inputs: dict[str, InputSource]
    cans: list[CanBusConfig]
    cameras: list[CameraConfig]
    command: CommandSettings
    ros: RosSettings | None = None


def is_sim_camera(camera: CameraConfig) -> bool:
    return isinstance(camera.source, str) and camera.source.startswith(SIM_CAMERA_PREFIX)


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.path}: {key}: {message}")

    def add_error(self, exc: ConfigError) -> None:
        self.lines.append(f"{self.path}: {exc}")


def _mapping(value: Any, key: str, problems: _Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"must be a mapping, not {type(value).__name__}")
        return {}
    return value


def _unknown_keys(data: dict[str, Any], known: tuple[str, ...], key: str, problems: _Problems) -> None:
    for name in data:
        if name not in known:
            problems.add(f"{key}.{name}" if key else str(name), f"unknown key (known: {', '.join(known)})")


def _names(value: Any, key: str, problems: _Problems) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, "must be a list of names")
        return ()
    if len(set(value)) != len(value):
        problems.add(key, "names must be unique")
    return tuple(value)


def _joystick(data: Any, key: str, base: Path, problems: _Problems) -> JoystickEntry | None:
    if not isinstance(data, dict):
        problems.add(key, "must be a mapping with name, type, axes and buttons")
        return None
    entry_ok = True
    for required in ("name", "type", "axes", "buttons"):
        if required not in data:
            problems.add(f"{key}.{required}", "missing")
            entry_ok = False
    if not entry_ok:
        return None
    kind = data["type"]
    if kind not in JOYSTICK_TYPES:
        problems.add(f"{key}.type", f"unknown joystick type {kind!r} (known: {', '.join(JOYSTICK_TYPES)})")
        return None
    options = {k: v for k, v in data.items() if k not in ("name", "type", "axes", "buttons", "calibration", "bus")}
    calibration = None
    if data.get("calibration"):
        calibration = Path(data["calibration"])
        calibration = calibration if calibration.is_absolute() else base / calibration
        if not calibration.is_file():
            problems.add(f"{key}.calibration", f"file {calibration} does not exist (run excap joystick calibrate)")
        else:
            from drivers.joystick.calibration import load_calibration

            try:
                unknown = [a for a in load_calibration(calibration).axes if a not in (data.get("axes") or [])]
                if unknown:
                    problems.add(f"{key}.calibration", f"{calibration} calibrates axes the device does not list: "
                                                       f"{', '.join(unknown)}")
            except ConfigError as exc:
                problems.add(f"{key}.calibration", " ".join(str(exc).split()))
    entry = JoystickEntry(name=str(data["name"]), type=kind, axes=_names(data["axes"], f"{key}.axes", problems),
                          buttons=_names(data["buttons"], f"{key}.buttons", problems), options=options,
                          calibration=calibration, bus=data.get("bus"))
    _check_driver_options(entry, key, problems)
    return entry


def _check_driver_options(entry: JoystickEntry, key: str, problems: _Problems) -> None:
    """Build the driver's own config dataclass, so misspelt or missing keys are found now."""
    from drivers.joystick.hid_joystick import HidJoystickConfig
    from drivers.joystick.serial_joystick import SerialJoystickConfig

    if entry.type == "sim":
        if entry.options:
            problems.add(f"{key}.{next(iter(entry.options))}", "unknown key for a sim joystick")
        return
    if entry.type == "j1939":
        if entry.bus is None:
            problems.add(f"{key}.bus", "missing: name of the `can` entry the joystick is read from")
        if "source_address" not in entry.options:
            problems.add(f"{key}.source_address", "missing")
        elif not isinstance(entry.options["source_address"], int) or not 0 <= entry.options["source_address"] <= 253:
            problems.add(f"{key}.source_address", "must be a J1939 source address 0..253")
        for name in entry.options:
            if name not in ("source_address", "use_ejm", "stale_after_s"):
                problems.add(f"{key}.{name}", "unknown key for a j1939 joystick")
        return
    config_type = HidJoystickConfig if entry.type == "hid" else SerialJoystickConfig
    known = {f.name for f in dataclasses.fields(config_type)}
    required = {f.name for f in dataclasses.fields(config_type)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    for name in entry.options:
        if name not in known:
            problems.add(f"{key}.{name}",
                         f"unknown key for a {entry.type} joystick (known: {', '.join(sorted(known))})")
    for name in sorted(required - set(entry.options) - {"axes", "buttons"}):
        problems.add(f"{key}.{name}", "missing")
    if entry.type == "serial" and entry.options.get("protocol", "exjs1") not in ("exjs1", "ascii"):
        problems.add(f"{key}.protocol", f"must be exjs1 or ascii, not {entry.options.get('protocol')!r}")


def _input_source(text: Any, key: str, joysticks: dict[str, JoystickEntry], kind: str,
                  problems: _Problems) -> InputSource | None:
    if not isinstance(text, str) or "." not in text:
        problems.add(key, f"must be 'device.{kind}' (e.g. left.ABS_X or left.0), not {text!r}")
        return None
    device, _, item = text.partition(".")
    if device not in joysticks:
        problems.add(key, f"no joystick named {device!r}")
        return None
    names = joysticks[device].axes if kind == "axis" else joysticks[device].buttons
    if item.isdigit() and int(item) < len(names):
        return InputSource(device, int(item))
    if item in names:
        return InputSource(device, names.index(item))
    problems.add(key, f"joystick {device!r} has no {kind} {item!r} (has: {', '.join(names)})")
    return None


def load_station_config(path: Path) -> StationConfig:
    problems = _Problems(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(data, dict) or data.get("schema") != "excap.station":
        raise ConfigError(f"{path}: not an excap station config (expected schema: excap.station)")
    base = path.parent
    _unknown_keys(data, _TOP_KEYS, "", problems)
    station = _mapping(data.get("station"), "station", problems)
    _unknown_keys(station, ("id", "out_dir"), "station", problems)
    machine = _mapping(data.get("machine"), "machine", problems)
    _unknown_keys(machine, ("profile", "pattern", "id", "simulated"), "machine", problems)
    session = _mapping(data.get("session"), "session", problems)
    _unknown_keys(session, ("operator", "certification", "site", "task", "notes", "certification_policy"), "session",
                  problems)
    if session.get("certification_policy", "refuse") not in ("refuse", "mark_uncertified"):
        problems.add("session.certification_policy",
                     f"must be refuse or mark_uncertified, not {session['certification_policy']!r}")

    profile = None
    try:
        profile = load_profile(machine.get("profile", "excavator_20t"))
    except ConfigError as exc:
        problems.add("machine.profile", str(exc))
    pattern = str(machine.get("pattern") or (profile.default_pattern if profile else "iso")).lower()
    if profile is not None and pattern not in profile.patterns:
        problems.add("machine.pattern", f"profile {profile.name} has no pattern {pattern!r} "
                                        f"(has: {', '.join(profile.patterns)})")
    if "id" not in machine:
        problems.add("machine.id", "missing: the fleet identifier of the machine")

    joysticks: list[JoystickEntry] = []
    raw_joysticks = data.get("joysticks") or []
    if not isinstance(raw_joysticks, list):
        problems.add("joysticks", "must be a list")
        raw_joysticks = []
    for index, entry in enumerate(raw_joysticks):
        parsed = _joystick(entry, f"joysticks[{index}]", base, problems)
        if parsed is not None:
            joysticks.append(parsed)
    by_name = {j.name: j for j in joysticks}
    if len(by_name) != len(joysticks):
        problems.add("joysticks", "joystick names must be unique")

    inputs = _mapping(data.get("inputs"), "inputs", problems)
    _unknown_keys(inputs, ("axes", "buttons"), "inputs", problems)
    axis_inputs: dict[str, InputSource] = {}
    button_inputs: dict[str, InputSource] = {}
    if profile is not None and joysticks:
        for kind, wanted, target in (("axis", profile.axes, axis_inputs), ("button", profile.buttons, button_inputs)):
            section = "axes" if kind == "axis" else "buttons"
            given = _mapping(inputs.get(section), f"inputs.{section}", problems)
            for name in given:
                if name not in wanted:
                    problems.add(f"inputs.{section}.{name}", f"profile {profile.name} has no {kind} {name!r}")
            for name in wanted:
                if name not in given:
                    if kind == "axis" or name == profile.enable_button:
                        problems.add(f"inputs.{section}.{name}", "missing: which device input feeds it")
                    continue
                source = _input_source(given[name], f"inputs.{section}.{name}", by_name, kind, problems)
                if source is not None:
                    target[name] = source

    cans: list[CanBusConfig] = []
    raw_cans = data.get("can") or []
    if not isinstance(raw_cans, list):
        problems.add("can", "must be a list")
        raw_cans = []
    for index, entry in enumerate(raw_cans):
        try:
            cans.append(CanBusConfig.from_dict(entry, f"can[{index}]", base_dir=base))
        except ConfigError as exc:
            problems.add_error(exc)
    bus_names = {c.name for c in cans}
    for index, joystick in enumerate(joysticks):
        if joystick.type == "j1939" and joystick.bus is not None and joystick.bus not in bus_names:
            problems.add(f"joysticks[{index}].bus", f"no can entry named {joystick.bus!r}")

    cameras: list[CameraConfig] = []
    raw_cameras = data.get("cameras") or []
    if not isinstance(raw_cameras, list):
        problems.add("cameras", "must be a list")
        raw_cameras = []
    known_camera = {f.name for f in dataclasses.fields(CameraConfig)}
    for index, entry in enumerate(raw_cameras):
        key = f"cameras[{index}]"
        if not isinstance(entry, dict):
            problems.add(key, "must be a mapping with name and source")
            continue
        bad = [k for k in entry if k not in known_camera]
        for name in bad:
            problems.add(f"{key}.{name}", f"unknown key (known: {', '.join(sorted(known_camera))})")
        for name in ("name", "source"):
            if name not in entry:
                problems.add(f"{key}.{name}", "missing")
        if bad or "name" not in entry or "source" not in entry:
            continue
        try:
            cameras.append(CameraConfig(**entry))
        except (ConfigError, TypeError, ValueError) as exc:
            problems.add(key, str(exc))

    command_data = _mapping(data.get("command"), "command", problems)
    _unknown_keys(command_data, ("bus", "rate_hz", "stale_timeout_ms"), "command", problems)
    command = CommandSettings(bus=command_data.get("bus"), rate_hz=command_data.get("rate_hz"),
                              stale_timeout_s=float(command_data.get("stale_timeout_ms", 100)) / 1000.0)
    if command.bus is not None and command.bus not in bus_names:
        problems.add("command.bus", f"no can entry named {command.bus!r}")
    if command.bus is not None and profile is not None and profile.cab_joysticks is None:
        problems.add("command.bus", f"profile {profile.name} has no cab_joysticks layout to send commands with")
    if command.stale_timeout_s <= 0:
        problems.add("command.stale_timeout_ms", "must be positive")
    simulated = bool(machine.get("simulated", False))
    if simulated and not any(c.interface == "virtual" for c in cans):
        problems.add("machine.simulated", "the simulated machine needs a `can` entry with interface: virtual")

    _check_sim_cameras(cameras, simulated, problems)
    ros = _ros_settings(data.get("ros"), joysticks, cameras, problems) if "ros" in data else None

    if problems.lines:
        raise ConfigError("\n".join(problems.lines))
    assert profile is not None
    out_dir = Path(station.get("out_dir", "episodes")).expanduser()
    return StationConfig(
        path=path, station_id=str(station.get("id", "station")),
        out_dir=out_dir if out_dir.is_absolute() else base / out_dir,
        profile=profile, pattern=pattern, machine_id=str(machine["id"]), simulated_machine=simulated,
        session={k: str(v) for k, v in session.items()}, joysticks=joysticks, axis_inputs=axis_inputs,
        button_inputs=button_inputs, cans=cans, cameras=cameras, command=command, ros=ros,
    )


def _check_sim_cameras(cameras: list[CameraConfig], simulated: bool, problems: _Problems) -> None:
    from drivers.sim.cameras import VIEWS

    for index, camera in enumerate(cameras):
        if not is_sim_camera(camera):
            continue
        view = str(camera.source)[len(SIM_CAMERA_PREFIX):]
        if view not in VIEWS:
            problems.add(f"cameras[{index}].source", f"unknown simulated view {view!r} (known: {', '.join(VIEWS)})")
        if not simulated:
            problems.add(f"cameras[{index}].source", "a simulated camera needs machine.simulated: true")


def _topic_entries(value: Any, key: str, image: bool, problems: _Problems) -> tuple[tuple[str, str], ...]:
    from capture_node.ros.convert import parse_topic_entry

    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, "must be a list of topic entries (name=/topic or /topic)")
        return ()
    entries = []
    for index, entry in enumerate(value):
        try:
            entries.append(parse_topic_entry(entry, image=image))
        except ValueError as exc:
            problems.add(f"{key}[{index}]", str(exc))
    return tuple(entries)


def _ros_settings(value: Any, joysticks: list[JoystickEntry], cameras: list[CameraConfig],
                  problems: _Problems) -> RosSettings:
    data = _mapping(value, "ros", problems)
    _unknown_keys(data, _ROS_KEYS, "ros", problems)
    taken = {f"joystick/{j.name}": f"joysticks entry {j.name!r}" for j in joysticks}
    taken |= {f"cameras/{c.name}": f"cameras entry {c.name!r}" for c in cameras}
    lists: dict[str, tuple[str, ...]] = {}
    for key, image in (("joy_topics", False), ("image_topics", True), ("compressed_image_topics", True)):
        entries = _topic_entries(data.get(key), f"ros.{key}", image, problems)
        for name, topic in entries:
            path = f"{'cameras' if image else 'joystick'}/{name}"
            if path in taken:
                problems.add(f"ros.{key}", f"{topic} and {taken[path]} both record to /{path}")
            taken[path] = topic
        lists[key] = tuple(entry for entry in data.get(key) or () if isinstance(entry, str))
    command_topic = data.get("command_topic") or ""
    if not isinstance(command_topic, str):
        problems.add("ros.command_topic", "must be a topic name")
        command_topic = ""
    if command_topic and joysticks:
        problems.add("ros.command_topic", "the station's joysticks drive /control: a command topic cannot be "
                                          "recorded as well")
    prefix = data.get("publish_prefix", "/excap")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        problems.add("ros.publish_prefix", f"must be a topic namespace like /excap, not {prefix!r}")
        prefix = "/excap"
    publish = _mapping(data.get("publish"), "ros.publish", problems)
    _unknown_keys(publish, _PUBLISH_KEYS, "ros.publish", problems)
    toggles = {}
    for name in _PUBLISH_KEYS:
        flag = publish.get(name, True)
        if not isinstance(flag, bool):
            problems.add(f"ros.publish.{name}", "must be true or false")
            flag = True
        toggles[f"publish_{name}"] = flag
    return RosSettings(joy_topics=lists["joy_topics"], image_topics=lists["image_topics"],
                       compressed_image_topics=lists["compressed_image_topics"], command_topic=command_topic,
                       publish_prefix=prefix, **toggles)

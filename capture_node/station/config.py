"""The station configuration file: machine, joysticks, CAN buses, cameras, output folder.

The file is checked against one declarative schema (`excap.station.schema.StationDocument`,
pydantic; every number finite and within its range), then a second pass checks the names that must
refer to each other (inputs naming joysticks, command.bus naming a can entry, the pattern in the
profile, ...). Every mistake is one line of the ConfigError, naming the file and the key
(`station.yaml: joysticks[1].port: missing`), so `excap check-config` reports them all at once.
A reference of every key is in `schemas/station.md`; `schemas/station.schema.json` is the JSON Schema.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError
from excap.core.yaml_files import load_yaml
from excap.drivers.camera.opencv_camera import CameraConfig
from excap.drivers.can.bus_config import CanBusConfig
from excap.drivers.config_schema import Problem, keyed, raise_problems, validate_partially
from excap.drivers.machine.profiles import MachineProfile, load_profile
from excap.station.ros_topics import parse_topic_entry
from excap.station.schema import (
    DRIVER_OPTIONS,
    JOYSTICK_TYPES,
    CameraEntry,
    J1939JoystickEntry,
    RosSection,
    StationDocument,
)

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
        from excap.station.joystick_types import joystick_type

        return joystick_type(self.type).periodic


@dataclass(frozen=True)
class InputSource:
    device: str
    index: int


@dataclass(kw_only=True)
class CommandSettings:
    bus: str | None = None  # the CAN bus the cab-joystick frames are sent on; None: commands are not sent
    rate_hz: float | None = None  # default: the profile's cab_joysticks rate
    stale_timeout_s: float = 0.1
    send_on_change: bool = False  # also send between periods as soon as the input changes


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
    optional_devices: frozenset[str] = frozenset()
    """Devices (`camera/<name>`, `can/<name>`, `joystick/<name>`) configured `required: false`: a start does not
    wait for them (see `excap.station.readiness`)."""


def is_sim_camera(camera: CameraConfig | CameraEntry) -> bool:
    return isinstance(camera.source, str) and camera.source.startswith(SIM_CAMERA_PREFIX)


def load_station_config(path: Path) -> StationConfig:
    data = load_yaml(path, "station config")
    if not isinstance(data, dict) or data.get("schema") != "excap.station":
        raise ConfigError(f"{path}: not an excap station config (expected schema: excap.station)")
    document, problems = validate_partially(StationDocument, data)
    assert document is not None  # a mapping always gives a (partial) document
    links = _Links(document, data, path.parent)
    raise_problems(path, [*problems, *links.problems()])
    return links.station_config(path)


def _entries(items: list[Any] | None) -> Iterator[tuple[int, Any]]:
    """(index, entry) of the list entries that passed the schema."""
    return ((index, item) for index, item in enumerate(items or []) if item is not None)


def _written(raw: dict[str, Any], section: str, key: str) -> set[Any]:
    """The values of `key` in a list section as written, entries that failed the schema included."""
    items = raw.get(section)
    return {item[key] for item in items if isinstance(item, dict) and isinstance(item.get(key), str)} \
        if isinstance(items, list) else set()


class _Links:
    """The second pass: names that must refer to each other, each mistake one Problem.

    A reference to an entry that failed the schema is not reported again: that entry's own line says what is wrong.
    """

    def __init__(self, document: StationDocument, raw: dict[str, Any], base: Path) -> None:
        self.doc = document
        self.base = base
        self.can_names = _written(raw, "can", "name")
        self.joystick_names = _written(raw, "joysticks", "name")
        self.interfaces = _written(raw, "can", "interface")
        self.profile: MachineProfile | None = None
        self.axis_inputs: dict[str, InputSource] = {}
        self.button_inputs: dict[str, InputSource] = {}

    def problems(self) -> list[Problem]:
        return [*self._machine(), *self._joysticks(), *self._inputs(), *self._cans(), *self._cameras(),
                *self._command(), *self._ros()]

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    # -- machine -----------------------------------------------------------------------------------------

    def _machine(self) -> Iterator[Problem]:
        machine = self.doc.machine
        if machine is None or machine.profile is None:
            return
        try:
            self.profile = load_profile(machine.profile)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                yield Problem("machine.profile", line)
            return
        profile = self.profile
        if machine.pattern is not None and machine.pattern.lower() not in profile.patterns:
            yield Problem("machine.pattern", f"profile {profile.name} has no pattern {machine.pattern!r} "
                                             f"(has: {', '.join(profile.patterns)})")
        if machine.simulated:
            from excap.drivers.sim.machines import SIM_MACHINES

            if profile.kind not in SIM_MACHINES:
                yield Problem("machine.simulated", f"no simulated machine of kind {profile.kind!r} (profile "
                                                   f"{profile.name}; simulated: {', '.join(SIM_MACHINES)})")
        if machine.simulated and "virtual" not in self.interfaces:
            yield Problem("machine.simulated", "the simulated machine needs a `can` entry with interface: virtual")

    @property
    def simulated(self) -> bool:
        return bool(self.doc.machine is not None and self.doc.machine.simulated)

    # -- joysticks ---------------------------------------------------------------------------------------

    def _joysticks(self) -> Iterator[Problem]:
        seen: set[str] = set()
        for index, entry in _entries(self.doc.joysticks):
            key = f"joysticks[{index}]"
            if entry.name in seen:
                yield Problem(f"{key}.name", f"joystick names must be unique ({entry.name!r} repeated)")
            seen.add(entry.name)
            if isinstance(entry, J1939JoystickEntry) and entry.bus not in self.can_names:
                yield Problem(f"{key}.bus", f"no can entry named {entry.bus!r}")
            if entry.type == "sim" and not self.simulated:
                yield Problem(f"{key}.type", "a sim joystick needs machine.simulated: true")
            if entry.calibration is not None:
                yield from self._calibration(entry.calibration, entry.axes, f"{key}.calibration")

    def _calibration(self, text: str, axes: list[str], key: str) -> Iterator[Problem]:
        from excap.drivers.joystick.calibration import load_calibration

        path = self._path(text)
        if not path.is_file():
            yield Problem(key, f"file {path} does not exist (run excap joystick calibrate)")
            return
        try:
            calibration = load_calibration(path)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                yield Problem(key, line)
            return
        unknown = [a for a in calibration.axes if a not in axes]
        if unknown:
            yield Problem(key, f"{path} calibrates axes the device does not list: {', '.join(unknown)}")

    # -- inputs ------------------------------------------------------------------------------------------

    def _inputs(self) -> Iterator[Problem]:
        profile, inputs = self.profile, self.doc.inputs
        joysticks = {entry.name: entry for _, entry in _entries(self.doc.joysticks)}
        if profile is None or inputs is None or not self.doc.joysticks:
            return
        for kind, wanted, given, target in (("axis", profile.axes, inputs.axes, self.axis_inputs),
                                            ("button", profile.buttons, inputs.buttons, self.button_inputs)):
            if given is None:
                continue
            section = "axes" if kind == "axis" else "buttons"
            for name in given:
                if name not in wanted:
                    yield Problem(keyed(f"inputs.{section}", name), f"profile {profile.name} has no {kind} {name!r}")
            for name in wanted:
                if name not in given:
                    if kind == "axis" or name == profile.enable_button:
                        yield Problem(keyed(f"inputs.{section}", name), "missing: which device input feeds it")
                    continue
                source = _input_source(given[name], kind, joysticks, self.joystick_names)
                if source is None:
                    continue  # names a device that failed the schema
                if isinstance(source, str):
                    yield Problem(keyed(f"inputs.{section}", name), source)
                else:
                    target[name] = source

    # -- CAN and cameras ---------------------------------------------------------------------------------

    def _cans(self) -> Iterator[Problem]:
        seen: set[str] = set()
        for index, entry in _entries(self.doc.can):
            if entry.name in seen:
                yield Problem(f"can[{index}].name", f"can names must be unique ({entry.name!r} repeated)")
            seen.add(entry.name)

    def _cameras(self) -> Iterator[Problem]:
        from excap.drivers.sim.machines import SIM_MACHINES

        kind = SIM_MACHINES.get(self.profile.kind) if self.profile is not None else None
        seen: set[str] = set()
        for index, camera in _entries(self.doc.cameras):
            if camera.name in seen:
                yield Problem(f"cameras[{index}].name", f"camera names must be unique ({camera.name!r} repeated)")
            seen.add(camera.name)
            if not is_sim_camera(camera):
                continue
            view = str(camera.source)[len(SIM_CAMERA_PREFIX):]
            if kind is not None and view not in kind.views:
                yield Problem(f"cameras[{index}].source", f"unknown simulated view {view!r} of the simulated "
                                                          f"{kind.kind} (known: {', '.join(kind.views)})")
            if not self.simulated:
                yield Problem(f"cameras[{index}].source", "a simulated camera needs machine.simulated: true")

    # -- command -----------------------------------------------------------------------------------------

    def _command(self) -> Iterator[Problem]:
        command = self.doc.command
        if command is None or command.bus is None:
            return
        if command.bus not in self.can_names:
            yield Problem("command.bus", f"no can entry named {command.bus!r}")
        if self.profile is not None and self.profile.cab_joysticks is None:
            yield Problem("command.bus", f"profile {self.profile.name} has no cab_joysticks layout to send "
                                         "commands with")

    # -- ros ---------------------------------------------------------------------------------------------

    def _ros(self) -> Iterator[Problem]:
        ros = self.doc.ros
        if ros is None:
            return
        taken = {f"joystick/{j.name}": f"joysticks entry {j.name!r}" for _, j in _entries(self.doc.joysticks)}
        taken |= {f"cameras/{c.name}": f"cameras entry {c.name!r}" for _, c in _entries(self.doc.cameras)}
        for key, image in (("joy_topics", False), ("image_topics", True), ("compressed_image_topics", True)):
            for index, entry in _entries(getattr(ros, key)):
                try:
                    name, topic = parse_topic_entry(entry, image=image)
                except ValueError as exc:
                    yield Problem(f"ros.{key}[{index}]", str(exc))
                    continue
                path = f"{'cameras' if image else 'joystick'}/{name}"
                if path in taken:
                    yield Problem(f"ros.{key}", f"{topic} and {taken[path]} both record to /{path}")
                taken[path] = topic
        if ros.command_topic and self.doc.joysticks:
            yield Problem("ros.command_topic", "the station's joysticks drive /control: a command topic cannot be "
                                               "recorded as well")
        if ros.publish_prefix is not None and not ros.publish_prefix.startswith("/"):
            yield Problem("ros.publish_prefix", f"must be a topic namespace like /excap, not {ros.publish_prefix!r}")

    # -- the result --------------------------------------------------------------------------------------

    def station_config(self, path: Path) -> StationConfig:
        doc, profile = self.doc, self.profile
        assert profile is not None
        machine, station, command = doc.machine, doc.station, doc.command
        return StationConfig(
            path=path, station_id=station.id, out_dir=self._path(station.out_dir), profile=profile,
            pattern=(machine.pattern or profile.default_pattern).lower(), machine_id=machine.id,
            simulated_machine=machine.simulated,
            session={k: str(v) for k, v in doc.session.model_dump().items() if v is not None},
            joysticks=[self._joystick(entry) for entry in doc.joysticks], axis_inputs=self.axis_inputs,
            button_inputs=self.button_inputs,
            cans=[CanBusConfig.from_entry(entry, f"can[{index}]", self.base) for index, entry in enumerate(doc.can)],
            cameras=[CameraConfig.from_entry(entry) for entry in doc.cameras],
            command=CommandSettings(bus=command.bus,
                                    rate_hz=None if command.rate_hz is None else float(command.rate_hz),
                                    stale_timeout_s=float(command.stale_timeout_ms) / 1000.0,
                                    send_on_change=command.send_on_change),
            ros=_ros_settings(doc.ros) if doc.ros is not None else None,
            optional_devices=frozenset(
                [f"camera/{c.name}" for c in doc.cameras if not c.required]
                + [f"can/{c.name}" for c in doc.can if not c.required]
                + [f"joystick/{j.name}" for j in doc.joysticks if not j.required]),
        )

    def _joystick(self, entry: Any) -> JoystickEntry:
        options = {name: getattr(entry, name) for name in DRIVER_OPTIONS[entry.type].model_fields
                   if name in entry.model_fields_set}
        if "search_dirs" in options:
            options["search_dirs"] = tuple(options["search_dirs"])
        return JoystickEntry(name=entry.name, type=entry.type, axes=tuple(entry.axes), buttons=tuple(entry.buttons),
                             options=options, calibration=self._path(entry.calibration) if entry.calibration else None,
                             bus=getattr(entry, "bus", None))


def _input_source(text: str, kind: str, joysticks: dict[str, Any], written: set[str]) -> InputSource | str | None:
    """The device input `text` names, or why it names none (None: the device's entry failed the schema)."""
    if "." not in text:
        return f"must be 'device.{kind}' (e.g. left.ABS_X or left.0), not {text!r}"
    device, _, item = text.partition(".")
    if device not in joysticks:
        return None if device in written else f"no joystick named {device!r}"
    names = joysticks[device].axes if kind == "axis" else joysticks[device].buttons
    if item.isdigit() and int(item) < len(names):
        return InputSource(device, int(item))
    if item in names:
        return InputSource(device, names.index(item))
    return f"joystick {device!r} has no {kind} {item!r} (has: {', '.join(names)})"


def _ros_settings(ros: RosSection) -> RosSettings:
    publish = ros.publish
    return RosSettings(joy_topics=tuple(ros.joy_topics or ()), image_topics=tuple(ros.image_topics or ()),
                       compressed_image_topics=tuple(ros.compressed_image_topics or ()),
                       command_topic=ros.command_topic, publish_prefix=ros.publish_prefix,
                       publish_joy=publish.joy, publish_commands=publish.commands,
                       publish_joint_states=publish.joint_states, publish_cameras=publish.cameras,
                       publish_diagnostics=publish.diagnostics)


__all__ = ["JOYSTICK_TYPES", "SIM_CAMERA_PREFIX", "CommandSettings", "InputSource", "JoystickEntry", "RosSettings",
           "StationConfig", "is_sim_camera", "load_station_config"]

"""The station configuration file (`schema: excap.station`) as one declarative model.

Device entries come from `excap.drivers.device_schema`; every number has its range from `excap.drivers.limits`.
`excap.station.config` validates a file with `StationDocument`, then checks the names that
must refer to each other (see there). `schemas/station.schema.json` is this model's JSON Schema.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from excap.drivers import limits
from excap.drivers.config_schema import ConfigModel, Flag, Name, Names, Text, choice, number, version
from excap.drivers.device_schema import (
    CameraEntry,
    CanBusEntry,
    HidOptions,
    J1939Options,
    SerialOptions,
    SimOptions,
    StreamName,
)
from excap.drivers.machine.profiles import DEFAULT_PROFILE
from excap.station.joystick_types import JOYSTICK_TYPES as DRIVER_TABLE

JOYSTICK_TYPES = tuple(DRIVER_TABLE)


class StationSection(ConfigModel):
    id: Name = "station"
    """Name of this station."""
    out_dir: Name = "episodes"
    """Episode folder; relative to the config file, `~` is the home folder."""


class MachineSection(ConfigModel):
    profile: Name = DEFAULT_PROFILE
    """A profile name in schemas/profiles/ or a YAML path."""
    pattern: Name | None = None
    """A control pattern of the profile (default: the profile's own)."""
    id: Name
    """Fleet identifier of the machine."""
    simulated: Flag = False
    """The simulated excavator joins the virtual CAN bus and answers the commands (dry runs)."""


class SessionSection(ConfigModel):
    """Episode metadata; `excap record` options override it."""

    operator: Text | None = None
    certification: Text | None = None
    site: Text | None = None
    task: Text | None = None
    notes: Text | None = None
    certification_policy: choice("refuse", "mark", "mark_uncertified") = "refuse"
    """`refuse` an operator the registry does not certify, or `mark` the episode uncertified
    (`mark_uncertified`: alias of `mark`)."""


class StationCanBusEntry(CanBusEntry):
    required: Flag = True
    """A session does not start before the bus delivered frames (unless overridden); false: opt out."""


class StationCameraEntry(CameraEntry):
    required: Flag = True
    """A session does not start before the camera delivered a picture (unless overridden); false: opt out."""


class JoystickCommon(ConfigModel):
    """Keys every joystick device has."""

    family = "joystick"

    name: StreamName
    """Stream name (`/joystick/<name>`)."""
    axes: Names
    """Names of the values the device reports, in order."""
    buttons: Names
    calibration: Name | None = None
    """A calibration file written by `excap joystick calibrate`."""
    required: Flag = True
    """A periodic joystick (serial, j1939, sim): a session does not start before it delivered samples (unless
    overridden); false: opt out. HID joysticks only report changes and are never waited for."""


class HidJoystickEntry(JoystickCommon, HidOptions):
    unknown_key = "unknown key for a hid joystick"
    type: Literal["hid"]


class SerialJoystickEntry(JoystickCommon, SerialOptions):
    unknown_key = "unknown key for a serial joystick"
    type: Literal["serial"]


class J1939JoystickEntry(JoystickCommon, J1939Options):
    unknown_key = "unknown key for a j1939 joystick"
    type: Literal["j1939"]
    bus: Name
    """The `can` entry the joystick is read from."""


class SimJoystickEntry(JoystickCommon, SimOptions):
    unknown_key = "unknown key for a sim joystick"
    type: Literal["sim"]


JoystickEntryModel = Annotated[HidJoystickEntry | SerialJoystickEntry | J1939JoystickEntry | SimJoystickEntry,
                               Field(discriminator="type")]
DRIVER_OPTIONS: dict[str, type[BaseModel]] = {name: kind.options for name, kind in DRIVER_TABLE.items()}
ENTRY_MODELS = {"hid": HidJoystickEntry, "serial": SerialJoystickEntry, "j1939": J1939JoystickEntry,
                "sim": SimJoystickEntry}
assert all(issubclass(ENTRY_MODELS[name], options) for name, options in DRIVER_OPTIONS.items()), \
    "every type of the joystick driver table needs its entry model here"


class InputsSection(ConfigModel):
    axes: dict[Name, Name] = Field(default_factory=dict)
    """`device.axis` (name or index) feeding each of the profile's axes; all are required."""
    buttons: dict[Name, Name] = Field(default_factory=dict)
    """`device.button` feeding each profile button; the enable button is required."""


class CommandSection(ConfigModel):
    bus: Name | None = None
    """The `can` entry the cab-joystick frames are sent on (omit: commands are recorded, not sent)."""
    rate_hz: number(limits.COMMAND_RATE_HZ) | None = None
    """Command frame rate (default: the profile's cab_joysticks.rate_hz)."""
    stale_timeout_ms: number(limits.STALE_TIMEOUT_MS) = 100
    """Operator input older than this neutralises the commands."""
    send_on_change: Flag = False
    """Also send the commands between periods as soon as the operator's input changes."""


class PublishSection(ConfigModel):
    joy: Flag = True
    commands: Flag = True
    joint_states: Flag = True
    cameras: Flag = True
    diagnostics: Flag = True


class RosSection(ConfigModel):
    """What the ROS 2 node records from topics and publishes."""

    joy_topics: list[Text] | None = None
    image_topics: list[Text] | None = None
    compressed_image_topics: list[Text] | None = None
    command_topic: Text = ""
    publish_prefix: Text = "/excap"
    publish: PublishSection = Field(default_factory=PublishSection)


class StationDocument(ConfigModel):
    """An operator station: machine, joysticks, CAN buses, cameras, command path, output folder."""

    schema_: choice("excap.station") = Field(alias="schema")
    schema_version: version(1) = 1
    station: StationSection = Field(default_factory=StationSection)
    machine: MachineSection
    session: SessionSection = Field(default_factory=SessionSection)
    joysticks: list[JoystickEntryModel] = Field(default_factory=list)
    inputs: InputsSection = Field(default_factory=InputsSection)
    can: list[StationCanBusEntry] = Field(default_factory=list)
    cameras: list[StationCameraEntry] = Field(default_factory=list)
    command: CommandSection = Field(default_factory=CommandSection)
    ros: RosSection | None = None

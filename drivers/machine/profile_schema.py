"""The machine profile file (`schema: excap.machine_profile`) as a declarative model, and its cross-field checks.

`excap.drivers.machine.profiles.load_profile` validates a file with `ProfileDocument`, runs `profile_problems`
(names that must refer to each other) and builds the `MachineProfile` the rest of excap uses.
"""

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from excap.drivers import limits
from excap.drivers.config_schema import (
    ConfigModel,
    Name,
    NameList,
    Names,
    Problem,
    Sign,
    Text,
    choice,
    keyed,
    number,
    version,
)

STATION_ACTIONS = ("start", "stop", "start_stop", "success", "failure", "discard", "marker")


class FunctionEntry(ConfigModel):
    """A machine function and what each sign of its command means."""

    name: Name
    positive: Text = ""
    negative: Text = ""


class JoystickSection(ConfigModel):
    """The operator-station inputs the patterns refer to, normalised to [-1, 1] after calibration."""

    axes: Names
    buttons: Names
    enable_button: Name
    """The deadman button: commands flow only while it is held."""
    deadband: number(limits.DEADBAND) = 0.05
    expo: number(limits.EXPO) = 0.0


class AxisBindingEntry(ConfigModel):
    """function = sign * shaped(axis)."""

    axis: Name
    sign: Sign = 1.0


class ButtonPairEntry(ConfigModel):
    positive: Name
    negative: Name | None = None


class ButtonBindingEntry(ConfigModel):
    """A discrete function (e.g. forward-neutral-reverse): +1, -1, or 0 when neither or both are held."""

    buttons: ButtonPairEntry


def _binding_kind(value: Any) -> str:
    if isinstance(value, ButtonBindingEntry) or (isinstance(value, dict) and "buttons" in value):
        return "buttons"
    return "axis"


FunctionBinding = Annotated[
    Annotated[AxisBindingEntry, Tag("axis")] | Annotated[ButtonBindingEntry, Tag("buttons")],
    Discriminator(_binding_kind)]


class PatternEntry(ConfigModel):
    description: Text = ""
    functions: dict[Name, FunctionBinding]
    """Every machine function, bound to an axis (with a sign) or to a pair of buttons."""


class StationBindingEntry(ConfigModel):
    buttons: NameList
    """Profile buttons pressed together (one name or a list)."""
    hold_s: number(limits.HOLD_S) = 0.0


class BindingsSection(ConfigModel):
    """Station actions on joystick button gestures."""

    unknown_key = "unknown action"

    start: StationBindingEntry | None = None
    stop: StationBindingEntry | None = None
    start_stop: StationBindingEntry | None = None
    success: StationBindingEntry | None = None
    failure: StationBindingEntry | None = None
    discard: StationBindingEntry | None = None
    marker: StationBindingEntry | None = None


class CabAxisEntry(ConfigModel):
    function: Name
    sign: Sign = 1.0
    """axis = sign * function command."""


class CabJoystickEntry(ConfigModel):
    source_address: number(limits.SOURCE_ADDRESS)
    x: CabAxisEntry | None = None
    y: CabAxisEntry | None = None


class CabEnableEntry(ConfigModel):
    joystick: Name
    button: number(limits.BJM1_BUTTON)
    """1-based BJM1 button number."""


class CabJoysticksSection(ConfigModel):
    """How the machine's own cab joysticks report on its J1939 bus (BJM1, PGN 64982)."""

    rate_hz: number(limits.COMMAND_RATE_HZ) = 50.0
    enable: CabEnableEntry
    joysticks: dict[Name, CabJoystickEntry]


class ProfileDocument(ConfigModel):
    """A machine profile: functions, operator inputs, control patterns, cab joysticks, station bindings."""

    schema_: choice("excap.machine_profile") = Field(alias="schema")
    schema_version: version(1) = 1
    kind: Name
    """excavator or wheel_loader (certificates name machine kinds)."""
    model: Name
    dbc: NameList = Field(default_factory=list)
    """CAN databases in schemas/ (one path or a list)."""
    functions: list[FunctionEntry]
    joystick: JoystickSection
    default_pattern: Name | None = None
    patterns: dict[Name, PatternEntry]
    bindings: BindingsSection | None = None
    cab_joysticks: CabJoysticksSection | None = None


# -- cross-field checks ------------------------------------------------------------------------------------


def _present(*values: Any) -> bool:
    return all(value is not None for value in values)


def _function_names(doc: ProfileDocument) -> list[str] | None:
    if doc.functions is None or any(f is None for f in doc.functions):
        return None
    return [f.name for f in doc.functions]


def _check_functions(doc: ProfileDocument) -> Iterator[Problem]:
    names = _function_names(doc)
    if names is None:
        return
    if not names:
        yield Problem("functions", "must list at least one machine function")
    for index, name in enumerate(names):
        if name in names[:index]:
            yield Problem(f"functions[{index}].name", f"{name!r} is listed twice")


def _check_joystick(doc: ProfileDocument) -> Iterator[Problem]:
    joystick = doc.joystick
    if joystick is None or not _present(joystick.buttons, joystick.enable_button):
        return
    if joystick.enable_button not in joystick.buttons:
        yield Problem("joystick.enable_button", f"{joystick.enable_button!r} is not one of joystick.buttons")


def _pattern_keys(doc: ProfileDocument) -> list[str]:
    return [name.lower() for name in doc.patterns] if doc.patterns is not None else []


def _check_patterns(doc: ProfileDocument) -> Iterator[Problem]:
    if doc.patterns is None:
        return
    if not doc.patterns:
        yield Problem("patterns", "must define at least one control pattern")
    functions = _function_names(doc)
    joystick = doc.joystick
    axes = joystick.axes if joystick is not None else None
    buttons = joystick.buttons if joystick is not None else None
    keys = _pattern_keys(doc)
    for name, pattern in doc.patterns.items():
        where = keyed("patterns", name)
        if keys.count(name.lower()) > 1:
            yield Problem(where, "pattern names must differ in more than letter case")
        for function, binding in pattern.functions.items():
            at = keyed(f"{where}.functions", function)
            if functions is not None and function not in functions:
                yield Problem(at, f"unknown machine function {function!r}")
            if isinstance(binding, AxisBindingEntry):
                if axes is not None and binding.axis not in axes:
                    yield Problem(f"{at}.axis", f"unknown axis {binding.axis!r} (has: {', '.join(axes)})")
            elif buttons is not None:
                for role in ("positive", "negative"):
                    button = getattr(binding.buttons, role)
                    if button is not None and button not in buttons:
                        yield Problem(f"{at}.buttons.{role}", f"unknown button {button!r} (has: {', '.join(buttons)})")
        if functions is not None:
            missing = [f for f in functions if f not in pattern.functions]
            if missing:
                yield Problem(where, f"leaves {', '.join(missing)} unbound")
    if doc.default_pattern is not None and doc.default_pattern.lower() not in keys and keys:
        yield Problem("default_pattern", f"no pattern {doc.default_pattern!r} (has: {', '.join(doc.patterns)})")


def _driving_buttons(doc: ProfileDocument) -> set[str]:
    driving = {doc.joystick.enable_button} if doc.joystick is not None and doc.joystick.enable_button else set()
    for pattern in (doc.patterns or {}).values():
        for binding in pattern.functions.values():
            if isinstance(binding, ButtonBindingEntry):
                driving |= {b for b in (binding.buttons.positive, binding.buttons.negative) if b}
    return driving


def _check_bindings(doc: ProfileDocument) -> Iterator[Problem]:
    bindings = doc.bindings
    if bindings is None or doc.joystick is None or doc.joystick.buttons is None:
        return
    buttons = doc.joystick.buttons
    driving = _driving_buttons(doc)
    gestures: dict[tuple[frozenset[str], float], str] = {}
    for action in STATION_ACTIONS:
        entry = getattr(bindings, action)
        if entry is None or entry.buttons is None:
            continue
        where = f"bindings.{action}"
        if not entry.buttons:
            yield Problem(f"{where}.buttons", "missing (a list of profile buttons pressed together)")
        for name in entry.buttons:
            if name not in buttons:
                yield Problem(f"{where}.buttons", f"unknown button {name!r} (has: {', '.join(buttons)})")
            elif name in driving:
                yield Problem(f"{where}.buttons", f"{name!r} drives the machine (enable or a function button)")
        if entry.hold_s is None:
            continue
        gesture = (frozenset(entry.buttons), float(entry.hold_s))
        if gesture in gestures:
            yield Problem(where, f"same buttons and hold time as bindings.{gestures[gesture]}")
        gestures[gesture] = action


def _check_cab_joysticks(doc: ProfileDocument) -> Iterator[Problem]:
    cab = doc.cab_joysticks
    if cab is None or cab.joysticks is None:
        return
    functions = _function_names(doc)
    addresses: dict[int, str] = {}
    driven: dict[str, str] = {}
    for name, joystick in cab.joysticks.items():
        where = keyed("cab_joysticks.joysticks", name)
        if joystick.source_address is not None:
            if joystick.source_address in addresses:
                yield Problem(f"{where}.source_address",
                              f"0x{joystick.source_address:02X} is also joystick {addresses[joystick.source_address]}")
            addresses[joystick.source_address] = name
        for axis_name in ("x", "y"):
            axis = getattr(joystick, axis_name)
            if axis is None or axis.function is None:
                continue
            if functions is not None and axis.function not in functions:
                yield Problem(f"{where}.{axis_name}.function", f"unknown machine function {axis.function!r}")
            elif axis.function in driven:
                yield Problem(f"{where}.{axis_name}.function",
                              f"{axis.function!r} is also sent by {driven[axis.function]}")
            driven.setdefault(axis.function, f"{name}.{axis_name}")
    if functions is not None:
        missing = [f for f in functions if f not in driven]
        if missing:
            yield Problem("cab_joysticks", f"leaves {', '.join(missing)} without a joystick axis")
    if cab.enable is not None and cab.enable.joystick is not None and cab.enable.joystick not in cab.joysticks:
        yield Problem("cab_joysticks.enable.joystick", f"no joystick {cab.enable.joystick!r} "
                                                       f"(has: {', '.join(cab.joysticks)})")


def profile_problems(doc: ProfileDocument) -> list[Problem]:
    """Names that must refer to each other: functions, axes, buttons, patterns, bindings, cab joysticks."""
    return [*_check_functions(doc), *_check_joystick(doc), *_check_patterns(doc), *_check_bindings(doc),
            *_check_cab_joysticks(doc)]

"""Machine profiles: a machine's functions and the control patterns that map sticks onto them."""

from dataclasses import dataclass
from pathlib import Path

from excap.core.errors import ConfigError
from excap.core.yaml_files import load_yaml
from excap.drivers.config_schema import raise_problems, validate_partially
from excap.drivers.machine.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout
from excap.drivers.machine.profile_schema import (
    STATION_ACTIONS,
    BindingsSection,
    ButtonBindingEntry,
    CabAxisEntry,
    CabJoysticksSection,
    ProfileDocument,
    profile_problems,
)
from excap.schemas import SCHEMAS_DIR

PROFILES_DIR = SCHEMAS_DIR / "profiles"
DEFAULT_PROFILE = "excavator_20t"


@dataclass(frozen=True)
class AxisBinding:
    """One machine function driven by one input axis: function = sign * shaped(axis)."""

    axis: str
    sign: float


@dataclass(frozen=True)
class ButtonBinding:
    """A discrete function from buttons (e.g. forward-neutral-reverse): +1, -1, or 0 when neither or both."""

    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class StationBinding:
    """A station action (start, stop, ..., marker) on a press of `buttons` together, held `hold_s` seconds."""

    action: str
    buttons: frozenset[str]
    hold_s: float = 0.0


@dataclass(frozen=True)
class ControlPattern:
    name: str
    description: str
    bindings: dict[str, AxisBinding | ButtonBinding]


@dataclass(frozen=True)
class MachineProfile:
    name: str
    kind: str
    model: str
    dbc: tuple[str, ...]
    functions: tuple[str, ...]
    function_meanings: dict[str, str]
    axes: tuple[str, ...]
    buttons: tuple[str, ...]
    enable_button: str
    deadband: float
    expo: float
    default_pattern: str
    patterns: dict[str, ControlPattern]
    source: Path
    cab_joysticks: CabJoystickLayout | None = None
    station_bindings: tuple[StationBinding, ...] = ()

    def pattern(self, name: str | None = None) -> ControlPattern:
        key = (name or self.default_pattern).lower()
        if key not in self.patterns:
            raise ConfigError(f"{self.source}: no control pattern {key!r} (has {', '.join(self.patterns)})")
        return self.patterns[key]

    @property
    def dbc_paths(self) -> list[Path]:
        return [SCHEMAS_DIR / name for name in self.dbc]


def resolve_profile_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = PROFILES_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
    raise ConfigError(f"machine profile {str(name_or_path)!r} not found (known: {known})")


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> MachineProfile:
    """Read and check a profile; every mistake is one line of the ConfigError (`file: key: message`)."""
    source = resolve_profile_path(name_or_path)
    data = load_yaml(source, "machine profile")
    if not isinstance(data, dict) or data.get("schema") != "excap.machine_profile":
        raise ConfigError(f"{source}: not an excap machine profile (schema: excap.machine_profile)")
    document, problems = validate_partially(ProfileDocument, data)
    if document is not None:
        problems += profile_problems(document)
    raise_problems(source, problems)
    assert document is not None
    return profile_from_document(document, source)


def profile_from_document(doc: ProfileDocument, source: Path) -> MachineProfile:
    """The MachineProfile of a checked document."""
    functions = tuple(f.name for f in doc.functions)
    patterns: dict[str, ControlPattern] = {}
    for name, pattern in doc.patterns.items():
        bindings: dict[str, AxisBinding | ButtonBinding] = {}
        for function in functions:
            binding = pattern.functions[function]
            if isinstance(binding, ButtonBindingEntry):
                bindings[function] = ButtonBinding(binding.buttons.positive, binding.buttons.negative)
            else:
                bindings[function] = AxisBinding(binding.axis, float(binding.sign))
        patterns[name.lower()] = ControlPattern(name.lower(), pattern.description, bindings)
    joystick = doc.joystick
    return MachineProfile(
        name=source.stem,
        kind=doc.kind,
        model=doc.model,
        dbc=tuple(doc.dbc),
        functions=functions,
        function_meanings={f.name: f"+ {f.positive} / - {f.negative}" for f in doc.functions},
        axes=tuple(joystick.axes),
        buttons=tuple(joystick.buttons),
        enable_button=joystick.enable_button,
        deadband=float(joystick.deadband),
        expo=float(joystick.expo),
        default_pattern=(doc.default_pattern or next(iter(doc.patterns))).lower(),
        patterns=patterns,
        source=source,
        cab_joysticks=_cab_layout(doc.cab_joysticks),
        station_bindings=_station_bindings(doc.bindings),
    )


def _station_bindings(bindings: BindingsSection | None) -> tuple[StationBinding, ...]:
    if bindings is None:
        return ()
    return tuple(StationBinding(action, frozenset(entry.buttons), float(entry.hold_s))
                 for action in STATION_ACTIONS if (entry := getattr(bindings, action)) is not None)


def _cab_layout(cab: CabJoysticksSection | None) -> CabJoystickLayout | None:
    if cab is None:
        return None

    def axis(entry: CabAxisEntry | None) -> CabAxis | None:
        return CabAxis(entry.function, float(entry.sign)) if entry is not None else None

    joysticks = tuple(CabJoystick(name, int(entry.source_address), axis(entry.x), axis(entry.y))
                      for name, entry in cab.joysticks.items())
    return CabJoystickLayout(float(cab.rate_hz), joysticks, cab.enable.joystick, int(cab.enable.button))

"""Machine profiles: a machine's functions and the control patterns that map sticks onto them."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from capture_node.errors import ConfigError
from drivers.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout
from schemas import SCHEMAS_DIR

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


STATION_ACTIONS = ("start", "stop", "start_stop", "success", "failure", "discard", "marker")


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


def _require(data: dict[str, Any], key: str, source: Path, where: str = "") -> Any:
    if key not in data:
        raise ConfigError(f"{source}: missing key {where}{key}")
    return data[key]


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> MachineProfile:
    source = resolve_profile_path(name_or_path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != "excap.machine_profile":
        raise ConfigError(f"{source}: not an excap machine profile (schema: excap.machine_profile)")
    functions_raw = _require(data, "functions", source)
    functions = tuple(str(f["name"]) for f in functions_raw)
    meanings = {str(f["name"]): f"+ {f.get('positive', '')} / - {f.get('negative', '')}" for f in functions_raw}
    joystick = _require(data, "joystick", source)
    axes = tuple(_require(joystick, "axes", source, "joystick."))
    buttons = tuple(_require(joystick, "buttons", source, "joystick."))
    enable = str(_require(joystick, "enable_button", source, "joystick."))
    if enable not in buttons:
        raise ConfigError(f"{source}: joystick.enable_button {enable!r} is not one of joystick.buttons")
    patterns: dict[str, ControlPattern] = {}
    for pattern_name, pattern in _require(data, "patterns", source).items():
        bindings: dict[str, AxisBinding | ButtonBinding] = {}
        for function, binding in _require(pattern, "functions", source, f"patterns.{pattern_name}.").items():
            where = f"patterns.{pattern_name}.functions.{function}"
            if function not in functions:
                raise ConfigError(f"{source}: {where}: unknown machine function {function!r}")
            if "buttons" in binding:
                pair = binding["buttons"]
                for role in ("positive", "negative"):
                    if pair.get(role) is not None and pair[role] not in buttons:
                        raise ConfigError(f"{source}: {where}.buttons.{role}: unknown button {pair[role]!r}")
                if pair.get("positive") is None:
                    raise ConfigError(f"{source}: missing key {where}.buttons.positive")
                bindings[function] = ButtonBinding(str(pair["positive"]), pair.get("negative"))
                continue
            if binding.get("axis") not in axes:
                raise ConfigError(f"{source}: {where}.axis: unknown axis {binding.get('axis')!r}")
            bindings[function] = AxisBinding(str(binding["axis"]), float(binding.get("sign", 1)))
        missing = [f for f in functions if f not in bindings]
        if missing:
            raise ConfigError(f"{source}: patterns.{pattern_name} leaves {', '.join(missing)} unbound")
        patterns[str(pattern_name).lower()] = ControlPattern(
            str(pattern_name).lower(), str(pattern.get("description", "")), bindings)
    profile = MachineProfile(
        name=source.stem,
        kind=str(_require(data, "kind", source)),
        model=str(_require(data, "model", source)),
        dbc=tuple(str(d) for d in (data.get("dbc") or [])) if isinstance(data.get("dbc"), list)
        else ((str(data["dbc"]),) if data.get("dbc") else ()),
        functions=functions,
        function_meanings=meanings,
        axes=axes,
        buttons=buttons,
        enable_button=enable,
        deadband=float(joystick.get("deadband", 0.05)),
        expo=float(joystick.get("expo", 0.0)),
        default_pattern=str(data.get("default_pattern", next(iter(patterns)))).lower(),
        patterns=patterns,
        source=source,
        cab_joysticks=_cab_layout(data.get("cab_joysticks"), functions, source),
        station_bindings=_station_bindings(data.get("bindings"), buttons, enable, patterns, source),
    )
    profile.pattern()  # the default must exist
    return profile


def _station_bindings(data: Any, buttons: tuple[str, ...], enable: str, patterns: dict[str, ControlPattern],
                      source: Path) -> tuple[StationBinding, ...]:
    """`bindings: {action: {buttons: [..], hold_s: S}}`; never the enable button or a machine-function button."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: bindings must be a mapping of action -> {{buttons, hold_s}}")
    driving = {enable} | {name for p in patterns.values() for b in p.bindings.values() if isinstance(b, ButtonBinding)
                          for name in (b.positive, b.negative) if name}
    result = []
    for action, entry in data.items():
        where = f"{source}: bindings.{action}"
        if action not in STATION_ACTIONS:
            raise ConfigError(f"{where}: unknown action (known: {', '.join(STATION_ACTIONS)})")
        names = entry.get("buttons") if isinstance(entry, dict) else None
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{where}.buttons: missing (a list of profile buttons pressed together)")
        for name in names:
            if name not in buttons:
                raise ConfigError(f"{where}.buttons: unknown button {name!r} (has: {', '.join(buttons)})")
            if name in driving:
                raise ConfigError(f"{where}.buttons: {name!r} drives the machine (enable or a function button)")
        hold_s = float(entry.get("hold_s", 0.0))
        if hold_s < 0:
            raise ConfigError(f"{where}.hold_s: must not be negative")
        result.append(StationBinding(str(action), frozenset(str(n) for n in names), hold_s))
    gestures = [(b.buttons, b.hold_s) for b in result]
    if len(set(gestures)) != len(gestures):
        raise ConfigError(f"{source}: bindings: two actions share the same buttons and hold time")
    return tuple(result)


def _cab_layout(data: Any, functions: tuple[str, ...], source: Path) -> CabJoystickLayout | None:
    if data is None:
        return None
    joysticks = []
    for name, entry in _require(data, "joysticks", source, "cab_joysticks.").items():
        axes: dict[str, CabAxis | None] = {}
        for axis in ("x", "y"):
            binding = entry.get(axis)
            if binding is None:
                axes[axis] = None
                continue
            if binding.get("function") not in functions:
                raise ConfigError(f"{source}: cab_joysticks.joysticks.{name}.{axis}.function: "
                                  f"unknown machine function {binding.get('function')!r}")
            axes[axis] = CabAxis(str(binding["function"]), float(binding.get("sign", 1)))
        address = int(_require(entry, "source_address", source, f"cab_joysticks.joysticks.{name}."))
        joysticks.append(CabJoystick(str(name), address, axes["x"], axes["y"]))
    enable = _require(data, "enable", source, "cab_joysticks.")
    layout = CabJoystickLayout(float(data.get("rate_hz", 50)), tuple(joysticks), str(enable["joystick"]),
                               int(enable["button"]))
    missing = [f for f in functions if f not in layout.functions_covered]
    if missing:
        raise ConfigError(f"{source}: cab_joysticks leaves {', '.join(missing)} without a joystick axis")
    if layout.enable_joystick not in {j.name for j in joysticks}:
        raise ConfigError(f"{source}: cab_joysticks.enable.joystick: no joystick {layout.enable_joystick!r}")
    return layout

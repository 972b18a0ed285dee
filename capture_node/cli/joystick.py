"""`excap joystick monitor|calibrate`: one joystick, from a station config (`--config --device`) or described on the
command line (`--type --set KEY=VALUE`); the drivers come from `excap.cli.joystick_tools`, the terminal side from
`excap.cli.joystick_console`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from excap.cli.arguments import positive
from excap.core.errors import ConfigError, ExcapError


def add_joystick_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    joystick = commands.add_parser("joystick", help="monitor or calibrate one joystick")
    joystick_actions = joystick.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("monitor", "live view of axes, buttons, rate and health"),
                         ("calibrate", "measure centre and range, write a calibration file")):
        sub = joystick_actions.add_parser(action, help=text)
        sub.add_argument("--config", type=Path, metavar="STATION.yaml", help="take the device from a station config")
        sub.add_argument("--device", metavar="NAME", help="with --config: the joystick's name")
        sub.add_argument("--type", help="without --config: driver type (a type of the joystick driver table)")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="without --config: a driver setting (port=/dev/ttyUSB0, device=..., source_address=43)")
        sub.add_argument("--duration", type=positive(float), default=None, metavar="S")
        if action == "calibrate":
            sub.add_argument("--out", type=Path, required=True, metavar="CAL.yaml")
            sub.add_argument("--deadband", type=float, default=0.05)
            sub.add_argument("--expo", type=float, default=0.0)
            sub.add_argument("--invert", nargs="*", default=[], metavar="AXIS")
            sub.add_argument("--centre-s", type=positive(float), default=2.0, help="seconds to hold sticks released")
            sub.add_argument("--sweep-s", type=positive(float), default=8.0, help="seconds to sweep every axis")
    return joystick


def joystick_spec(args: argparse.Namespace) -> dict[str, object]:
    """The joystick spec (`excap.cli.joystick_tools`) the options describe."""
    if args.config is not None:
        from excap.station.config import load_station_config

        config = load_station_config(args.config)
        entry = next((j for j in config.joysticks if j.name == args.device), None)
        if entry is None:
            names = ", ".join(j.name for j in config.joysticks) or "none"
            raise ConfigError(f"{args.config}: no joystick named {args.device!r} (has: {names})")
        from excap.station.joystick_types import JoystickSetup, joystick_type

        setup = JoystickSetup(entry.name, entry.axes, entry.buttons, entry.options)
        spec: dict[str, object] = {"type": entry.type, **joystick_type(entry.type).config_values(setup)}
        if entry.bus is not None:  # j1939: the tools open the joystick's bus themselves
            bus = next(c for c in config.cans if c.name == entry.bus)
            spec.update(interface=bus.interface, channel=str(bus.channel))
            if bus.bitrate:
                spec["bitrate"] = bus.bitrate
        return spec
    if args.type is None:
        raise ConfigError("joystick: give --config STATION.yaml --device NAME, or --type with --set KEY=VALUE")
    from excap.station.joystick_types import joystick_type

    try:
        joystick_type(args.type)
    except ValueError as exc:
        raise ConfigError(f"joystick: --type: {exc}") from None
    spec = {"type": args.type}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"joystick: --set {item!r} is not KEY=VALUE")
        spec[key] = yaml.safe_load(value)
    return spec


def cmd_joystick(args: argparse.Namespace) -> int:
    from excap.cli.joystick_console import format_calibration, monitor, run_calibration
    from excap.cli.joystick_tools import joystick_factory
    from excap.drivers.joystick.calibration import save_calibration

    factory = joystick_factory(joystick_spec(args))
    if args.action == "monitor":
        monitor(factory, sys.stdout, args.duration)
        return 0
    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists")

    def prompt(text: str) -> None:
        if sys.stdin.isatty():
            input(f"{text}  [Enter] ")
        else:
            print(text, flush=True)

    calibration = run_calibration(factory, sys.stdout, prompt, centre_s=args.centre_s, sweep_s=args.sweep_s,
                                  deadband=args.deadband, expo=args.expo, invert=args.invert)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(calibration, args.out)
    print(format_calibration(calibration))
    print(f"saved {args.out}")
    return 0

"""`excap node`: run the ROS 2 node. Wired into `excap.cli.main` with `add_node_parser` / `cmd_node`."""

import argparse
from pathlib import Path

from excap.core.errors import ExcapError
from excap.core.extras import missing_extra
from excap.core.stop_request import StopRequest
from excap.drivers.can.lean_import import import_can_without_mf4


def add_node_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    node = subparsers.add_parser("node", help="run the excap_recorder ROS 2 node (services start/stop/...)")
    node.add_argument("--config", type=Path, default=None, metavar="STATION.yaml",
                      help="station config (schema: excap.station): its devices, and topics from its ros: section")
    node.add_argument("--sim", action="store_true",
                      help="the built-in simulated station: scripted operator, the simulated machine of the "
                           "profile's kind and its cameras")
    node.add_argument("--profile", default=None, metavar="PROFILE",
                      help="(--sim) machine profile, e.g. wheel_loader_20t (parameter profile; default excavator_20t)")
    node.add_argument("--out", type=Path, default=None, metavar="DIR", help="episode folder (parameter out_dir)")
    node.add_argument("--start", action="store_true", help="start an episode at once (parameter auto_start)")
    node.add_argument("--name", default=None, help="node name (default: excap_recorder)")
    node.add_argument("--foxglove", type=int, default=None, metavar="PORT",
                      help="also serve the live streams to Foxglove (WebSocket protocol) on PORT (0: any free port; "
                           "parameter foxglove_port); needs the viewers extra")
    node.add_argument("--foxglove-host", default=None, metavar="ADDRESS",
                      help="address of the Foxglove server (default 127.0.0.1, this machine only)")
    node.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], metavar="ARG",
                      help="further ROS arguments (last), e.g. --ros-args -p operator:=op-17")
    return node


def node_arguments(args: argparse.Namespace) -> list[str]:
    """The node's command line (ROS arguments) for the parsed `excap node` options."""
    extra = ["--ros-args", *args.ros_args] if args.ros_args else []
    if args.config is not None and not args.config.is_file():
        raise ExcapError(f"{args.config}: no such station config")
    params = []
    if args.config is not None:
        params.append(f"station_config:={args.config.resolve()}")
    if args.sim:
        params.append("sim:=true")
    if args.profile is not None:
        params.append(f"profile:={args.profile}")
    if args.out is not None:
        params.append(f"out_dir:={args.out.resolve()}")
    if args.start:
        params.append("auto_start:=true")
    if args.foxglove is not None:
        params.append(f"foxglove_port:={args.foxglove}")
    if args.foxglove_host is not None:
        params.append(f"foxglove_host:={args.foxglove_host}")
    ros = ["--ros-args"] if params or args.name else []
    for param in params:
        ros += ["-p", param]
    if args.name:
        ros += ["-r", f"__node:={args.name}"]
    return [*ros, *extra]


def cmd_node(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM are the node's stop at every moment, also while the station's and the ROS libraries load
    # (a KeyboardInterrupt raised inside a library's import can be swallowed by it): installed before those load.
    stop = StopRequest().install()
    import_can_without_mf4()
    if args.config is None and not args.sim and not any("station_config" in a or "topics" in a for a in args.ros_args):
        raise ExcapError("node needs --sim and/or --config STATION.yaml (or topic parameters after --ros-args)")
    if args.config is not None and args.sim:
        raise ExcapError("node takes --sim (the built-in simulated station) or --config STATION.yaml, not both")
    if args.profile is not None and args.config is not None:
        raise ExcapError("node --profile is for --sim; a station config names its profile in machine.profile")
    from excap.cli.station import check_foxglove

    if args.foxglove_host is not None and args.foxglove is None:
        raise ExcapError("--foxglove-host goes with --foxglove PORT")
    check_foxglove(args.foxglove, "node --foxglove")
    argv = node_arguments(args)
    if args.config is not None:
        from excap.station.config import load_station_config

        load_station_config(args.config)  # every mistake reported before ROS starts
    try:
        from excap.ros.node import main
    except ImportError as exc:
        raise missing_extra("node", "ros") from exc
    if stop.requested.is_set():
        return 130
    return main(argv, stop)

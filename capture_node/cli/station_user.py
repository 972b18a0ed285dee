"""`excap station-user add|remove|list`: the users who may log in to a station served with `--allow-remote`.

The users file is DIR/.excap/station_users.yaml (or `--users FILE`); it holds each user's role and a scrypt hash of
the password, never the password, and is written atomically with mode 0600. A running station reads it again when
it changes: an added user can log in at once, a removed one is logged out.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from excap.core.errors import ConfigError

ROLE_CHOICES = ("operator", "site_lead")


def add_station_user_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("station-user", help="users who may log in to a remote station: add, remove, list")
    actions = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=Path("episodes"),
                        help="episode folder whose .excap/station_users.yaml is used (default: %(default)s)")
    common.add_argument("--users", type=Path, default=None, metavar="FILE", help="a users file instead")
    add = actions.add_parser("add", parents=[common], help="add a user (the password is asked for)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES,
                     help="operator: record and label; site_lead: also administrative actions")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    remove = actions.add_parser("remove", parents=[common], help="remove a user (their logins end)")
    remove.add_argument("name")
    listing = actions.add_parser("list", parents=[common], help="users and roles")
    listing.add_argument("--json", action="store_true")
    return parser


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password: give it with --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def cmd_station_user(args: argparse.Namespace) -> int:
    from excap.station.users import add_user, check_name, load_users, remove_user, users_path

    path = users_path(args.dir, args.users)
    if args.user_command == "add":
        check_name(args.name)
        user = add_user(path, args.name, args.role, _password(args.password_stdin))
        print(f"{path}: added {user.name} ({user.role})")
    elif args.user_command == "remove":
        remove_user(path, args.name)
        print(f"{path}: removed {args.name}")
    else:
        users = sorted(load_users(path).values(), key=lambda u: u.name)
        if args.json:
            print(json.dumps([{"name": u.name, "role": u.role} for u in users], indent=2))
        else:
            print("\n".join(f"{u.name}  {u.role}" for u in users) if users else "(no users)")
    return 0

"""`excap operator add|certify|consent|list`: keeping the operator registry (DIR/.excap/operators.yaml).

Each change reads the registry, changes one operator and writes the whole file atomically with mode 0600
(display names are private: only the owner can read the file). Unknown keys are kept. `list` shows
operator ids, consent and certificates; display names only with `--names`, and only to the user who owns
the registry file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from excap.core.errors import ConfigError, ExcapError
from excap.people.certification import certificate_ref, certification_status
from excap.people.registry import Certificate, Operator, OperatorRegistry, load_registry, registry_path
from excap.schemas.machine_kinds import MACHINE_KINDS as KIND_REGISTRY

MACHINE_KINDS = tuple(KIND_REGISTRY)  # the kinds a certificate may name: the profiles' kinds (excap.schemas)


def _certificate_entry(certificate: Certificate) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": certificate.kind, "machine_kinds": list(certificate.machine_kinds)}
    if certificate.expiry is not None:
        entry["expiry"] = certificate.expiry.isoformat()
    return entry | certificate.extra


def _operator_entry(operator: Operator) -> dict[str, Any]:
    entry: dict[str, Any] = {"operator_id": operator.operator_id, "display_name": operator.display_name,
                             "consent_to_share": operator.consent_to_share}
    if operator.consent_date is not None:
        entry["consent_date"] = operator.consent_date.isoformat()
    entry["certificates"] = [_certificate_entry(c) for c in operator.certificates]
    return entry | operator.extra


def save_registry(registry: OperatorRegistry, path: str | Path) -> Path:
    """Write the registry atomically (temporary file, fsync, rename), readable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"operators": [_operator_entry(o) for o in sorted(registry.operators.values(),
                                                                 key=lambda o: o.operator_id)]}
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False, allow_unicode=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def load_or_empty(path: Path) -> OperatorRegistry:
    return load_registry(path) if path.exists() else OperatorRegistry({}, path)


def _existing(registry: OperatorRegistry, operator_id: str) -> Operator:
    operator = registry.get(operator_id)
    if operator is None:
        raise ConfigError(f"{registry.path}: no operator {operator_id!r} (add it with excap operator add)")
    return operator


def add_operator(path: Path, operator_id: str, display_name: str = "") -> Operator:
    registry = load_or_empty(path)
    if operator_id in registry.operators:
        raise ConfigError(f"{path}: operator {operator_id!r} is already registered")
    operator = Operator(operator_id=operator_id, display_name=display_name)
    registry.operators[operator_id] = operator
    save_registry(registry, path)
    return operator


def certify_operator(path: Path, operator_id: str, kind: str, machine_kinds: list[str], expiry: date | None,
                     ref: str = "") -> Operator:
    """Add a certificate (replacing one of the same kind and number)."""
    unknown = [k for k in machine_kinds if k not in MACHINE_KINDS]
    if not machine_kinds or unknown:
        raise ConfigError(f"machine kinds must be some of {', '.join(MACHINE_KINDS)}, not {machine_kinds!r}")
    registry = load_registry(path)
    operator = _existing(registry, operator_id)
    certificate = Certificate(kind, tuple(machine_kinds), expiry, {"ref": ref} if ref else {})
    kept = tuple(c for c in operator.certificates if (c.kind, c.extra.get("ref")) != (kind, ref or None))
    operator = dataclasses.replace(operator, certificates=(*kept, certificate))
    registry.operators[operator_id] = operator
    save_registry(registry, path)
    return operator


def set_consent(path: Path, operator_id: str, consent: bool, day: date | None = None) -> Operator:
    registry = load_registry(path)
    operator = dataclasses.replace(_existing(registry, operator_id), consent_to_share=consent,
                                   consent_date=day or datetime.now(UTC).date())
    registry.operators[operator_id] = operator
    save_registry(registry, path)
    return operator


def operator_rows(registry: OperatorRegistry, day: date, names: bool = False) -> list[dict[str, Any]]:
    rows = []
    for operator in sorted(registry.operators.values(), key=lambda o: o.operator_id):
        row: dict[str, Any] = {"operator_id": operator.operator_id}
        if names:
            row["display_name"] = operator.display_name
        row["consent_to_share"] = operator.consent_to_share
        row["consent_date"] = operator.consent_date.isoformat() if operator.consent_date else ""
        row["certificates"] = [{"ref": certificate_ref(c), "machine_kinds": list(c.machine_kinds),
                                "valid": c.valid_on(day)} for c in operator.certificates]
        row["certified_for"] = [k for k in MACHINE_KINDS
                                if certification_status(registry, operator.operator_id, k, day).certified]
        rows.append(row)
    return rows


def operators_table(rows: list[dict[str, Any]]) -> str:
    names = any("display_name" in r for r in rows)
    header = ["operator", *(["name"] if names else []), "consent", "certified for", "certificates"]
    table = [header]
    for r in rows:
        certificates = "; ".join(f"{c['ref']}{'' if c['valid'] else ' EXPIRED'}" for c in r["certificates"])
        consent = f"yes ({r['consent_date']})" if r["consent_to_share"] else "no"
        table.append([r["operator_id"], *([r.get("display_name", "")] if names else []), consent,
                      ", ".join(r["certified_for"]) or "-", certificates or "-"])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def add_operator_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("operator", help="the operator registry: add, certify, consent, list")
    actions = parser.add_subparsers(dest="operator_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=Path("episodes"),
                        help="episode folder whose .excap/operators.yaml is used (default: %(default)s)")
    common.add_argument("--registry", type=Path, default=None, metavar="FILE", help="a registry file instead")
    add = actions.add_parser("add", parents=[common], help="register an operator")
    add.add_argument("operator_id", help="pseudonymous id, as recorded in episodes")
    add.add_argument("--name", default="", help="display name (private: never exported)")
    certify = actions.add_parser("certify", parents=[common], help="add a certificate")
    certify.add_argument("operator_id")
    certify.add_argument("--kind", required=True, help="certificate kind, e.g. excavator-cpcs-a59")
    certify.add_argument("--machine-kind", action="append", required=True, choices=MACHINE_KINDS,
                         dest="machine_kinds", help="a machine kind it covers (repeat for several)")
    certify.add_argument("--expiry", type=_day, default=None, metavar="YYYY-MM-DD", help="last valid day")
    certify.add_argument("--ref", default="", help="certificate number")
    consent = actions.add_parser("consent", parents=[common], help="record consent to share (or its withdrawal)")
    consent.add_argument("operator_id")
    choice = consent.add_mutually_exclusive_group(required=True)
    choice.add_argument("--yes", action="store_true")
    choice.add_argument("--no", action="store_true")
    consent.add_argument("--date", type=_day, default=None, metavar="YYYY-MM-DD", help="default: today (UTC)")
    listing = actions.add_parser("list", parents=[common], help="operators, consent and certificates")
    listing.add_argument("--names", action="store_true", help="also show display names (registry owner only)")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--date", type=_day, default=None, metavar="YYYY-MM-DD",
                         help="judge certificates on this day (default: today, UTC)")
    return parser


def cmd_operator(args: argparse.Namespace) -> int:
    path = registry_path(args.dir, args.registry)
    action = args.operator_command
    if action == "add":
        add_operator(path, args.operator_id, args.name)
        print(f"{path}: added {args.operator_id}")
    elif action == "certify":
        operator = certify_operator(path, args.operator_id, args.kind, args.machine_kinds, args.expiry, args.ref)
        print(f"{path}: {args.operator_id} now holds {len(operator.certificates)} certificate(s)")
    elif action == "consent":
        set_consent(path, args.operator_id, bool(args.yes), args.date)
        print(f"{path}: {args.operator_id} consent to share: {'yes' if args.yes else 'no'}")
    else:
        registry = load_registry(path)
        if args.names and path.stat().st_uid != os.getuid():
            raise ExcapError(f"{path}: display names are shown only to the registry's owner")
        rows = operator_rows(registry, args.date or datetime.now(UTC).date(), names=args.names)
        print(json.dumps(rows, indent=2) if args.json else operators_table(rows))
    return 0

"""The operator registry (DIR/.excap/operators.yaml) and per-partner operator pseudonyms.

Episodes carry a pseudonymous `operator_id`; the registry maps it to what exports need to know: whether the
operator consented to sharing their demonstrations (and when), their certificates, and a display name that
stays private (it is never exported). Example:

```yaml
operators:
  - operator_id: op-1234
    display_name: Jane Doe          # private: never written to an export
    consent_to_share: true
    consent_date: 2026-01-15
    certificates:
      - {kind: excavator-cpcs-a59, machine_kinds: [excavator], expiry: 2027-06-30}
```

Unknown keys are kept (`extra`) so the file can grow. In exports the operator is replaced with
`pseudonym(secret, partner, operator_id)`: HMAC-SHA256 keyed with the secret in DIR/.excap/pseudonym.key
(32 random bytes, created once with mode 0600) over partner_id + NUL + operator_id, truncated to 16 hex
digits. The same operator gets the same pseudonym in every export for one partner, and unrelated ones for
different partners; without the key nobody can link a pseudonym to an operator_id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError
from excap.core.yaml_files import load_yaml

REGISTRY_NAME = "operators.yaml"
KEY_NAME = "pseudonym.key"
KEY_BYTES = 32
PSEUDONYM_HEX_DIGITS = 16


@dataclass(frozen=True)
class Certificate:
    kind: str
    machine_kinds: tuple[str, ...] = ()
    expiry: date | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def valid_on(self, day: date) -> bool:
        return self.expiry is None or day <= self.expiry


@dataclass(frozen=True)
class Operator:
    operator_id: str
    display_name: str = ""
    consent_to_share: bool = False
    consent_date: date | None = None
    certificates: tuple[Certificate, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class OperatorRegistry:
    operators: dict[str, Operator]
    path: Path | None = None

    def get(self, operator_id: str) -> Operator | None:
        return self.operators.get(operator_id)

    def consented(self, operator_id: str) -> bool:
        operator = self.operators.get(operator_id)
        return operator is not None and operator.consent_to_share


def _date(value: Any, where: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from exc


def _certificate(entry: Any, where: str) -> Certificate:
    if not isinstance(entry, dict) or not entry.get("kind"):
        raise ConfigError(f"{where}: a certificate needs at least a 'kind'")
    kinds = entry.get("machine_kinds") or []
    if isinstance(kinds, str):
        kinds = [kinds]
    known = {"kind", "machine_kinds", "expiry"}
    return Certificate(str(entry["kind"]), tuple(str(k) for k in kinds), _date(entry.get("expiry"), f"{where}: expiry"),
                       {k: v for k, v in entry.items() if k not in known})


def _operator(entry: Any, where: str) -> Operator:
    if not isinstance(entry, dict) or not entry.get("operator_id"):
        raise ConfigError(f"{where}: an operator needs an 'operator_id'")
    consent = entry.get("consent_to_share", False)
    if not isinstance(consent, bool):
        raise ConfigError(f"{where}: consent_to_share must be true or false, is {consent!r}")
    certificates = entry.get("certificates") or []
    if not isinstance(certificates, list):
        raise ConfigError(f"{where}: certificates must be a list")
    known = {"operator_id", "display_name", "consent_to_share", "consent_date", "certificates"}
    return Operator(
        operator_id=str(entry["operator_id"]),
        display_name=str(entry.get("display_name") or ""),
        consent_to_share=consent,
        consent_date=_date(entry.get("consent_date"), f"{where}: consent_date"),
        certificates=tuple(_certificate(c, f"{where}: certificates[{i}]") for i, c in enumerate(certificates)),
        extra={k: v for k, v in entry.items() if k not in known},
    )


def registry_path(directory: str | Path, path: str | Path | None = None) -> Path:
    return Path(path) if path else Path(directory) / ".excap" / REGISTRY_NAME


def load_registry(path: str | Path) -> OperatorRegistry:
    """Read an operator registry; a mistake raises ConfigError naming the file and entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no operator registry (it lists operators and their consent to share)")
    document = load_yaml(path, "operator registry") or {}
    entries = document.get("operators") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a top-level 'operators' list")
    operators: dict[str, Operator] = {}
    for index, entry in enumerate(entries):
        operator = _operator(entry, f"{path}: operators[{index}]")
        if operator.operator_id in operators:
            raise ConfigError(f"{path}: operators[{index}]: operator_id {operator.operator_id!r} is listed twice")
        operators[operator.operator_id] = operator
    return OperatorRegistry(operators, path)


def load_or_create_key(path: str | Path) -> bytes:
    """The pseudonym secret: read it, or create it once (32 random bytes, mode 0600, never overwritten). The key
    is written to a private temporary file and linked into place whole, so a concurrent reader (the delivery
    server answers requests on several threads) never sees it half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = secrets.token_bytes(KEY_BYTES)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
            return key
        except FileExistsError:
            pass  # another thread or process made it first: read theirs
        finally:
            os.unlink(temporary)
    key = path.read_bytes()
    if len(key) < 16:
        raise ConfigError(f"{path}: pseudonym key is too short ({len(key)} bytes)")
    return key


def key_path(directory: str | Path) -> Path:
    return Path(directory) / ".excap" / KEY_NAME


def pseudonym(secret: bytes, partner_id: str, operator_id: str) -> str:
    """A stable per-partner pseudonym: 'anon-' + 16 hex digits of HMAC-SHA256(secret, partner NUL operator)."""
    message = partner_id.encode("utf-8") + b"\x00" + operator_id.encode("utf-8")
    return "anon-" + hmac.new(secret, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]

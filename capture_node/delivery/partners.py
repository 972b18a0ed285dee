"""Delivery partners: bearer tokens (stored only as hashes) and grants to exported datasets.

Everything lives in DIR/.excap/partners.sqlite (mode 0600, in the private state folder). A token reads
`excap_<token id>_<secret>`: the token id (8 hex digits) finds the row, the secret (256 random bits) is checked
against its SHA-256, which is enough for a high-entropy random secret (no slow hash needed, nothing to guess).
"""

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from excap.core.clock import utc_now_iso
from excap.core.errors import ConfigError, ExcapError
from excap.core.state_dir import STATE_DIR, create_private, private_file, state_dir

DB_NAME = "partners.sqlite"
TOKEN_PREFIX = "excap"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TOKEN = re.compile(r"^excap_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (
    name TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS grants (
    partner TEXT NOT NULL REFERENCES partners(name) ON DELETE CASCADE,
    dataset TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (partner, dataset)
);
"""


class PartnerError(ExcapError):
    """A partner or grant does not exist, already exists, or a name is not allowed."""


@dataclass
class Partner:
    name: str
    token_id: str
    created_at: str
    revoked_at: str | None
    grants: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_name(name: str, kind: str) -> str:
    """A partner or dataset name: one plain path segment of letters, digits, '.', '_' and '-'."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(f"{kind} name {name!r}: use letters, digits, '.', '_' and '-' (not starting with '.' "
                          "or '-', no '..')")
    return name


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class PartnerStore:
    """The partner database of one delivery folder; every call opens and closes its own connection."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / STATE_DIR / DB_NAME

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            if not create:
                raise PartnerError(f"{self.path}: no partner database (add a partner first)")
            state_dir(self.root)
            create_private(self.path)
        else:
            state_dir(self.root)
            private_file(self.path)
        connection = sqlite3.connect(self.path, timeout=10.0)
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            connection.executescript(_SCHEMA)
            with connection:
                yield connection
        finally:
            connection.close()

    def add(self, name: str) -> str:
        """Creates a partner; returns its token, which is shown once and never stored."""
        check_name(name, "partner")
        secret = secrets.token_urlsafe(32)
        with self._connect(create=True) as db:
            row = db.execute("SELECT revoked_at FROM partners WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is None:
                raise PartnerError(f"partner {name!r} already exists (revoke it first to issue a new token)")
            db.execute("DELETE FROM partners WHERE name = ?", (name,))
            while True:
                token_id = secrets.token_hex(4)
                if db.execute("SELECT 1 FROM partners WHERE token_id = ?", (token_id,)).fetchone() is None:
                    break
            db.execute("INSERT INTO partners (name, token_id, token_sha256, created_at) VALUES (?, ?, ?, ?)",
                       (name, token_id, _hash(secret), utc_now_iso()))
        return f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def grant(self, name: str, dataset: str) -> None:
        check_name(dataset, "dataset")
        with self._connect() as db:
            self._require_active(db, name)
            db.execute("INSERT OR IGNORE INTO grants (partner, dataset, granted_at) VALUES (?, ?, ?)",
                       (name, dataset, utc_now_iso()))

    def revoke(self, name: str, dataset: str | None = None) -> None:
        """Without a dataset: the partner's token stops working and every grant is removed."""
        with self._connect() as db:
            self._require_active(db, name)
            if dataset is None:
                db.execute("UPDATE partners SET revoked_at = ? WHERE name = ?", (utc_now_iso(), name))
                db.execute("DELETE FROM grants WHERE partner = ?", (name,))
                return
            removed = db.execute("DELETE FROM grants WHERE partner = ? AND dataset = ?", (name, dataset)).rowcount
            if not removed:
                raise PartnerError(f"partner {name!r} has no grant for dataset {dataset!r}")

    def partners(self) -> list[Partner]:
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT name, token_id, created_at, revoked_at FROM partners ORDER BY name").fetchall()
            grants: dict[str, list[str]] = {}
            for partner, dataset in db.execute("SELECT partner, dataset FROM grants ORDER BY dataset"):
                grants.setdefault(partner, []).append(dataset)
        return [Partner(name, token_id, created, revoked, grants.get(name, []))
                for name, token_id, created, revoked in rows]

    def authenticate(self, token: str) -> Partner | None:
        """The active partner a token belongs to, or None for a malformed, forged or revoked token."""
        match = _TOKEN.match(token)
        if match is None or not self.path.exists():
            return None
        token_id, secret = match.groups()
        with self._connect() as db:
            row = db.execute("SELECT name, token_sha256, created_at, revoked_at FROM partners WHERE token_id = ?",
                             (token_id,)).fetchone()
            if row is None:
                hmac.compare_digest(_hash(secret), "0" * 64)  # same work whether or not the id exists
                return None
            name, expected, created, revoked = row
            if not hmac.compare_digest(_hash(secret), expected) or revoked is not None:
                return None
            grants = [d for (d,) in db.execute("SELECT dataset FROM grants WHERE partner = ? ORDER BY dataset",
                                               (name,))]
        return Partner(name, token_id, created, None, grants)

    def active_by_token_id(self, token_id: str) -> Partner | None:
        """The active partner with this token id (for requests signed on its behalf), or None."""
        if not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT name, created_at FROM partners WHERE token_id = ? AND revoked_at IS NULL",
                             (token_id,)).fetchone()
            if row is None:
                return None
            grants = [d for (d,) in db.execute("SELECT dataset FROM grants WHERE partner = ? ORDER BY dataset",
                                               (row[0],))]
        return Partner(row[0], token_id, row[1], None, grants)

    @staticmethod
    def _require_active(db: sqlite3.Connection, name: str) -> None:
        row = db.execute("SELECT revoked_at FROM partners WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PartnerError(f"no partner named {name!r}")
        if row[0] is not None:
            raise PartnerError(f"partner {name!r} was revoked on {row[0]}")


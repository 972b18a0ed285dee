"""Station users: who may log in to a station served with `--allow-remote`, and with which role.

The users file (default DIR/.excap/station_users.yaml, mode 0600, written atomically) maps each user name to a role
(`operator` or `site_lead`, see `excap.station.web.auth.PERMISSIONS`) and a password hash: scrypt (stdlib
`hashlib.scrypt`) with a per-user random salt and its parameters stored beside it. Passwords are never stored;
a password is checked by hashing it again and comparing in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from excap.core.errors import ConfigError
from excap.core.state_dir import STATE_DIR, private_dir
from excap.core.yaml_files import load_yaml

USERS_NAME = "station_users.yaml"
ROLES = ("operator", "site_lead")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~32 MiB and ~0.1 s per check
SALT_BYTES, HASH_BYTES = 16, 32
# Bounds on the stored parameters: a file edited by hand must not make a login take minutes or gigabytes.
MAX_N, MAX_R, MAX_P = 2**20, 32, 16


@dataclass(frozen=True)
class PasswordHash:
    """scrypt(password, salt, n, r, p) -> digest."""

    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))

    def matches(self, password: str) -> bool:
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        return hmac.compare_digest(_scrypt(password, self.salt, self.n, self.r, self.p), self.digest)

    def entry(self) -> dict[str, Any]:
        return {"kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p,
                "salt": base64.b64encode(self.salt).decode(), "hash": base64.b64encode(self.digest).decode()}


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES,
                          maxmem=256 * r * n * p)


DUMMY_HASH = PasswordHash(b"\0" * SALT_BYTES, b"\0" * HASH_BYTES)
"""Checked for an unknown user name, so that a login for one takes as long as for a real user."""


@dataclass(frozen=True)
class StationUser:
    name: str
    role: str
    password: PasswordHash


def users_path(directory: str | Path, path: str | Path | None = None) -> Path:
    """The users file: `path` if given, else DIR/.excap/station_users.yaml."""
    return Path(path) if path else Path(directory) / STATE_DIR / USERS_NAME


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"user name {name!r} is not allowed (letters, digits, '.', '_', '@', '-'; up to 64)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(f"a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return password


def _decode(text: object, where: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: not base64") from exc


def _parameter(entry: dict[str, Any], key: str, bound: int, where: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
        raise ConfigError(f"{where}.{key}: must be an integer from 1 to {bound}, not {value!r}")
    return value


def _password(entry: object, where: str) -> PasswordHash:
    if not isinstance(entry, dict) or entry.get("kdf") != "scrypt":
        raise ConfigError(f"{where}: must be a scrypt hash (kdf, n, r, p, salt, hash)")
    n = _parameter(entry, "n", MAX_N, where)
    if n < 2 or n & (n - 1):
        raise ConfigError(f"{where}.n: must be a power of two, not {n}")
    r = _parameter(entry, "r", MAX_R, where)
    p = _parameter(entry, "p", MAX_P, where)
    salt, digest = _decode(entry.get("salt"), f"{where}.salt"), _decode(entry.get("hash"), f"{where}.hash")
    if len(salt) < 8 or len(digest) < 16:
        raise ConfigError(f"{where}: salt or hash too short")
    return PasswordHash(salt, digest, n, r, p)


def load_users(path: str | Path) -> dict[str, StationUser]:
    """The users of a users file; ConfigError naming the file and the entry for any mistake."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no station users file (add a user with: excap station-user add NAME --role ROLE)")
    document = load_yaml(path, "station users file") or {}
    entries = document.get("users") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: users: must map user names to a role and a password hash")
    users: dict[str, StationUser] = {}
    for name, entry in entries.items():
        where = f"{path}: users.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: user name not allowed")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must hold role and password")
        role = entry.get("role")
        if role not in ROLES:
            raise ConfigError(f"{where}.role: must be one of {', '.join(ROLES)}, not {role!r}")
        users[name] = StationUser(name, str(role), _password(entry.get("password"), f"{where}.password"))
    return users


def load_or_empty(path: Path) -> dict[str, StationUser]:
    return load_users(path) if path.exists() else {}


def save_users(users: dict[str, StationUser], path: str | Path) -> Path:
    """Write the users file atomically (temporary file, fsync, rename) with mode 0600."""
    path = Path(path)
    if path.parent.name == STATE_DIR:
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    document = {"users": {u.name: {"role": u.role, "password": u.password.entry()}
                          for u in sorted(users.values(), key=lambda u: u.name)}}
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def add_user(path: Path, name: str, role: str, password: str) -> StationUser:
    users = load_or_empty(path)
    check_name(name)
    if name in users:
        raise ConfigError(f"{path}: user {name!r} already exists (remove it first to change it)")
    user = StationUser(name, check_role(role), PasswordHash.of(check_password(password)))
    users[name] = user
    save_users(users, path)
    return user


def remove_user(path: Path, name: str) -> None:
    users = load_users(path)
    if users.pop(name, None) is None:
        raise ConfigError(f"{path}: no user {name!r}")
    save_users(users, path)


class UserStore:
    """The users of a file, read again whenever the file changes (an added or removed user counts at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, StationUser] = {}
        self.problem = ""
        self.users()

    def users(self) -> dict[str, StationUser]:
        """The current users; none while the file is missing or broken (`problem` says why)."""
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            self._stamp = stamp
            try:
                self._users, self.problem = load_users(self.path), ""
            except ConfigError as exc:
                self._users, self.problem = {}, str(exc)
        return self._users

    def get(self, name: str) -> StationUser | None:
        return self.users().get(name)

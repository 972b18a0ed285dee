"""Station users: `excap station-user add|remove|list` run as a user would, the users file it writes (scrypt hashes
with their own salts, never a password, mode 0600, written atomically), and the refusal of broken files."""

import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from excap.core.errors import ConfigError
from excap.station.users import PasswordHash, UserStore, add_user, load_users, remove_user, users_path
from tests.support.commands import excap_command

PASSWORD = "correct horse battery"


def station_user(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(excap_command("station-user", *args), input=password, capture_output=True, text=True,
                          timeout=60)


def test_users_are_added_listed_and_removed_and_the_file_holds_no_password(tmp_path: Path) -> None:
    folder = tmp_path / "episodes"
    for name, role in (("olga", "operator"), ("lena", "site_lead")):
        added = station_user("add", name, "--role", role, "--password-stdin", "--dir", str(folder),
                             password=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
    path = users_path(folder)
    assert path == folder / ".excap" / "station_users.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert PASSWORD not in text and base64.b64encode(PASSWORD.encode()).decode() not in text
    entries = yaml.safe_load(text)["users"]
    assert entries["olga"]["role"] == "operator" and entries["lena"]["role"] == "site_lead"
    olga, lena = entries["olga"]["password"], entries["lena"]["password"]
    assert olga["kdf"] == "scrypt" and olga["n"] >= 2**14 and olga["r"] >= 8
    assert olga["salt"] != lena["salt"] and olga["hash"] != lena["hash"]  # same password, own salts
    users = load_users(path)
    assert users["olga"].password.matches(PASSWORD) and not users["olga"].password.matches(PASSWORD + "x")
    assert list(tmp_path.rglob("*.tmp")) == []

    listed = station_user("list", "--dir", str(folder))
    assert listed.returncode == 0 and listed.stdout.split() == ["lena", "site_lead", "olga", "operator"]
    again = station_user("add", "olga", "--role", "operator", "--password-stdin", "--dir", str(folder),
                         password=PASSWORD + "\n")
    assert again.returncode == 2 and again.stderr.strip() == f"excap: error: {path}: user 'olga' already exists " \
                                                             "(remove it first to change it)"
    assert station_user("remove", "olga", "--dir", str(folder)).returncode == 0
    assert set(load_users(path)) == {"lena"}
    missing = station_user("remove", "olga", "--dir", str(folder))
    assert missing.returncode == 2 and missing.stderr.strip() == f"excap: error: {path}: no user 'olga'"


@pytest.mark.parametrize(("args", "password", "message"), [
    (["--role", "operator"], "short\n", "a password needs 8 to 1024 characters"),
    (["--role", "operator"], "\n", "a password needs 8 to 1024 characters"),
    (["--role", "boss"], PASSWORD, "argument --role: invalid choice: 'boss'"),
])
def test_bad_additions_are_one_line_errors(tmp_path: Path, args: list[str], password: str, message: str) -> None:
    result = station_user("add", "olga", *args, "--password-stdin", "--users", str(tmp_path / "u.yaml"),
                          password=password)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "u.yaml").exists()


def test_without_a_terminal_the_password_must_come_from_stdin(tmp_path: Path) -> None:
    result = station_user("add", "olga", "--role", "operator", "--users", str(tmp_path / "u.yaml"), password="")
    assert result.returncode == 2
    assert result.stderr.strip() == "excap: error: no terminal to ask for the password: give it with --password-stdin"


def test_a_bad_user_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"user name '\.\./x' is not allowed"):
        add_user(tmp_path / "u.yaml", "../x", "operator", PASSWORD)


def _scrypt_entry(**changed: object) -> dict:
    return {"role": "operator", "password": {"kdf": "scrypt", "n": 1024, "r": 8, "p": 1, "salt": "AAAAAAAAAAA=",
                                             "hash": "AAAAAAAAAAAAAAAAAAAAAA==", **changed}}


@pytest.mark.parametrize(("entry", "message"), [
    ({"role": "admin"}, r"users\.olga\.role: must be one of operator, site_lead, not 'admin'"),
    ({"role": "operator", "password": "plain-text-password"}, r"users\.olga\.password: must be a scrypt hash"),
    (_scrypt_entry(n=2**30), r"users\.olga\.password\.n: must be an integer from 1 to"),
    (_scrypt_entry(n=1000), r"users\.olga\.password\.n: must be a power of two"),
    (_scrypt_entry(r=0), r"users\.olga\.password\.r: must be an integer from 1 to"),
    (_scrypt_entry(salt="!!"), r"users\.olga\.password\.salt: not base64"),
    (_scrypt_entry(salt="AAAA"), r"users\.olga\.password: salt or hash too short"),
])
def test_broken_users_files_name_the_file_and_the_entry(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "u.yaml"
    path.write_text(yaml.safe_dump({"users": {"olga": entry}}))
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        load_users(path)
    store = UserStore(path)
    assert store.users() == {} and store.problem.startswith(str(path))  # a running station lets nobody in


def test_a_running_station_sees_changes_of_the_users_file(tmp_path: Path) -> None:
    path = tmp_path / "u.yaml"
    add_user(path, "olga", "operator", PASSWORD)
    store = UserStore(path)
    assert set(store.users()) == {"olga"}
    add_user(path, "lena", "site_lead", PASSWORD)
    assert set(store.users()) == {"olga", "lena"}
    remove_user(path, "olga")
    assert set(store.users()) == {"lena"}


def test_password_hashes_are_salted_and_check_in_constant_time() -> None:
    one, two = PasswordHash.of(PASSWORD), PasswordHash.of(PASSWORD)
    assert one.salt != two.salt and one.digest != two.digest
    assert one.matches(PASSWORD) and two.matches(PASSWORD)
    assert not one.matches("") and not one.matches("x" * 5000)

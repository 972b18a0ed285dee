"""Partners: tokens stored only as hashes, grants, revocation, and the `excap partner` commands."""

import argparse
import json
import os
import sqlite3
from pathlib import Path

import pytest

from excap.cli.delivery import add_partner_parser, cmd_partner
from excap.core.errors import ConfigError
from excap.delivery.partners import PartnerError, PartnerStore


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="excap")
    add_partner_parser(parser.add_subparsers(dest="command", required=True))
    return cmd_partner(parser.parse_args(list(argv)))


def test_token_is_random_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = PartnerStore(tmp_path)
    token_a = store.add("acme")
    token_b = store.add("bolt")
    assert token_a != token_b and token_a.startswith("excap_") and len(token_a) > 50
    raw = (tmp_path / ".excap" / "partners.sqlite").read_bytes()
    secret = token_a.split("_", 2)[2]
    assert secret.encode() not in raw and token_a.encode() not in raw
    with sqlite3.connect(tmp_path / ".excap" / "partners.sqlite") as db:
        stored = db.execute("SELECT token_sha256 FROM partners WHERE name = 'acme'").fetchone()[0]
    assert len(stored) == 64 and stored != secret
    assert store.authenticate(token_a).name == "acme"
    assert store.authenticate(token_b).name == "bolt"


def test_forged_malformed_and_swapped_tokens_fail(tmp_path: Path) -> None:
    store = PartnerStore(tmp_path)
    token = store.add("acme")
    other = store.add("bolt")
    token_id, secret = token.split("_")[1], token.split("_", 2)[2]
    forged_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert store.authenticate(f"excap_{token_id}_{forged_secret}") is None
    assert store.authenticate(f"excap_{other.split('_')[1]}_{secret}") is None  # id of one, secret of another
    assert store.authenticate(f"excap_00000000_{secret}") is None
    assert store.authenticate("") is None
    assert store.authenticate(token + "x") is None
    assert store.authenticate(token.upper()) is None


def test_grants_and_revocation(tmp_path: Path) -> None:
    store = PartnerStore(tmp_path)
    token = store.add("acme")
    store.grant("acme", "dig-v1")
    store.grant("acme", "load-v2")
    store.grant("acme", "dig-v1")  # idempotent
    assert store.authenticate(token).grants == ["dig-v1", "load-v2"]
    store.revoke("acme", "dig-v1")
    assert store.authenticate(token).grants == ["load-v2"]
    with pytest.raises(PartnerError, match="no grant"):
        store.revoke("acme", "dig-v1")
    store.revoke("acme")
    assert store.authenticate(token) is None
    with pytest.raises(PartnerError, match="revoked"):
        store.grant("acme", "dig-v1")
    (partner,) = store.partners()
    assert not partner.active and partner.grants == []
    renewed = store.add("acme")  # a revoked partner can be issued a new token; the old one stays dead
    assert store.authenticate(renewed).name == "acme" and store.authenticate(token) is None


def test_names_are_checked_and_duplicates_refused(tmp_path: Path) -> None:
    store = PartnerStore(tmp_path)
    store.add("acme")
    with pytest.raises(PartnerError, match="already exists"):
        store.add("acme")
    for bad in ("../x", ".hidden", "a/b", "", "a..b"):
        with pytest.raises(ConfigError):
            store.grant("acme", bad)
    with pytest.raises(PartnerError, match="no partner"):
        store.grant("nobody", "dig-v1")


def test_partner_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("partner", "add", "acme", "--dir", str(tmp_path)) == 0
    token = capsys.readouterr().out.strip()
    assert PartnerStore(tmp_path).authenticate(token).name == "acme"
    assert run("partner", "grant", "acme", "dig-v1", "--dir", str(tmp_path)) == 0
    assert "does not exist yet" in capsys.readouterr().err
    assert run("partner", "list", "--dir", str(tmp_path), "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "acme" and listed[0]["grants"] == ["dig-v1"] and listed[0]["active"]
    assert token not in json.dumps(listed)
    assert run("partner", "revoke", "acme", "--dir", str(tmp_path)) == 0
    assert run("partner", "list", "--dir", str(tmp_path)) == 0
    assert "revoked" in capsys.readouterr().out


def test_state_folder_and_database_are_made_private(tmp_path: Path) -> None:
    state = tmp_path / ".excap"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    store = PartnerStore(tmp_path)
    store.add("acme")
    assert (state / "partners.sqlite").stat().st_mode & 0o777 == 0o600 and state.stat().st_mode & 0o777 == 0o700
    os.chmod(state, 0o755)
    os.chmod(state / "partners.sqlite", 0o644)  # loosened by hand: repaired when next opened
    assert [p.name for p in store.partners()] == ["acme"]
    assert (state / "partners.sqlite").stat().st_mode & 0o777 == 0o600 and state.stat().st_mode & 0o777 == 0o700

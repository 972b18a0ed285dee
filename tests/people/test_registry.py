import stat
import threading
from datetime import date
from pathlib import Path

import pytest

from excap.core.errors import ConfigError
from excap.people.registry import load_or_create_key, load_registry, pseudonym


def test_registry(episode_dir: Path) -> None:
    registry = load_registry(episode_dir / ".excap" / "operators.yaml")
    anna = registry.get("operator-anna-17")
    assert anna is not None and anna.consent_to_share and anna.consent_date == date(2026, 1, 15)
    assert anna.certificates[0].machine_kinds == ("excavator",)
    assert anna.certificates[0].valid_on(date(2027, 6, 30)) and not anna.certificates[0].valid_on(date(2027, 7, 1))
    assert registry.consented("operator-cleo-31")
    assert not registry.consented("operator-bert-23") and not registry.consented("unknown")


@pytest.mark.parametrize("text, message", [
    ("operators: {}", "top-level 'operators' list"),
    ("operators: [{display_name: x}]", "operator_id"),
    ("operators: [{operator_id: a, consent_to_share: 'yes'}]", "true or false"),
    ("operators: [{operator_id: a}, {operator_id: a}]", "listed twice"),
    ("operators: [{operator_id: a, consent_date: soon}]", "ISO date"),
    ("operators: [{operator_id: a, certificates: [{expiry: 2027-01-01}]}]", "kind"),
])
def test_registry_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "operators.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_registry(path)


def test_key_created_once_private_and_pseudonyms_stable(tmp_path: Path) -> None:
    path = tmp_path / ".excap" / "pseudonym.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_or_create_key(path) == key
    first = pseudonym(key, "oem-a", "operator-anna-17")
    assert first == pseudonym(key, "oem-a", "operator-anna-17")
    assert first != pseudonym(key, "oem-b", "operator-anna-17")
    assert first != pseudonym(key, "oem-a", "operator-cleo-31")
    assert first != pseudonym(b"\x00" * 32, "oem-a", "operator-anna-17")
    assert first.startswith("anon-") and len(first) == len("anon-") + 16


def test_key_made_by_many_threads_at_once_is_one_whole_key(tmp_path: Path) -> None:
    """The delivery server's first requests race to create the key: every one reads the same whole key."""
    for attempt in range(20):
        path = tmp_path / str(attempt) / "pseudonym.key"
        start = threading.Barrier(12)
        keys: list[bytes] = []
        errors: list[Exception] = []

        def make(path: Path = path, start: threading.Barrier = start, keys: list[bytes] = keys,
                 errors: list[Exception] = errors) -> None:
            start.wait()
            try:
                keys.append(load_or_create_key(path))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=make) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len(set(keys)) == 1 and len(keys[0]) == 32
        assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temporary file left

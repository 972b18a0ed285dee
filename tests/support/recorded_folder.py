"""A folder of real simulated recordings by three operators, and its operator registry."""

import shutil
from pathlib import Path

import pytest

OPERATORS = {  # operator_id -> (display name, consent)
    "operator-anna-17": ("Anna Quaresma", True),
    "operator-bert-23": ("Bertrand Olufsen", False),
    "operator-cleo-31": ("Cleopatra Viljanen", True),
}

REGISTRY = """operators:
  - operator_id: operator-anna-17
    display_name: Anna Quaresma
    consent_to_share: true
    consent_date: 2026-01-15
    certificates:
      - {kind: cpcs-a59, machine_kinds: [excavator], expiry: 2027-06-30}
  - operator_id: operator-bert-23
    display_name: Bertrand Olufsen
    consent_to_share: false
  - operator_id: operator-cleo-31
    display_name: Cleopatra Viljanen
    consent_to_share: true
    consent_date: 2026-02-01
"""


@pytest.fixture(scope="session")
def recorded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 2.5 s simulated episodes (one 160x120 camera at 10 fps), one per operator, with a registry."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    out = tmp_path_factory.mktemp("episodes")
    for seed, operator in enumerate(OPERATORS, start=1):
        run_sim_session(SimSessionOptions(out_dir=out, duration_s=2.5, cameras=1, width=160, height=120, fps=10,
                                          seed=seed, operator_id=operator,
                                          task="dig-and-load" if seed < 3 else "trenching"))
    (out / ".excap").mkdir()
    (out / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
    return out


@pytest.fixture
def episode_dir(recorded_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the recorded folder that a test may change: the episodes and the operator registry, never
    a catalogue or export another test left in the shared folder."""
    target = tmp_path / "episodes"
    shutil.copytree(recorded_dir, target, ignore=shutil.ignore_patterns("catalogue.sqlite*", "exports"))
    return target


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())

"""Where the tests find the repository and the real J1939 recordings beside it."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_CAN = REPO.parent / "shared" / "data" / "can"

"""Searching bytes for identities in every spelling they could take: UTF-8, UTF-16, JSON escapes, case."""

import json
import re
import unicodedata
from collections.abc import Iterable

# No spelling holds more than two zero bytes in a row (UTF-16 of an ASCII letter next to a character like U+0100),
# so longer runs (HDF5 files are mostly unused zeroed space) can be shortened without hiding any occurrence.
_ZERO_RUNS = re.compile(rb"\x00{3,}")


def spellings(identity: str) -> set[bytes]:
    """The byte strings `identity` can appear as in a file or a response."""
    texts = {identity, identity.lower(), identity.upper(), unicodedata.normalize("NFD", identity),
             unicodedata.normalize("NFC", identity)}
    found: set[bytes] = set()
    for text in texts:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            found.add(text.encode(encoding))
        found.add(json.dumps(text)[1:-1].encode("ascii"))  # \u00f6 escapes
        found.add(json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8"))
    return found


def identities_in(blob: bytes, identities: Iterable[str]) -> dict[str, list[bytes]]:
    """Each identity found in `blob`, with the spellings it was found in."""
    blob = _ZERO_RUNS.sub(b"\x00\x00\x00", blob)
    hits: dict[str, list[bytes]] = {}
    for identity in identities:
        found = sorted(s for s in spellings(identity) if s in blob)
        if found:
            hits[identity] = found
    return hits

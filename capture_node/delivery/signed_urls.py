"""Short-lived signed URLs of partner review videos, for a browser's `<video src>` (which cannot send a bearer
header).

A URL names the partner's token id, the episode and an expiry time (Unix seconds); its signature is
HMAC-SHA256 over the three with the server's secret DIR/.excap/url-signing.key (32 random bytes, mode 0600,
made once). The review video route accepts it instead of a bearer token; every other route ignores it. An expired
or altered URL, or one of a revoked token, is refused with 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from excap.core.state_dir import private_file, state_dir
from excap.people.registry import load_or_create_key

KEY_NAME = "url-signing.key"
LIFETIME_S = 900  # a signed URL works this long; the partner page asks for a new one when it stops working
PARAMETERS = ("token_id", "expires", "signature")
_HEX_8 = re.compile(r"[0-9a-f]{8}")
_HEX_64 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class SignedVideo:
    token_id: str
    episode_id: str
    expires: int


def signing_key(root: Path) -> bytes:
    state_dir(root)
    return load_or_create_key(private_file(state_dir(root) / KEY_NAME))


def signature(key: bytes, token_id: str, episode_id: str, expires: int) -> str:
    message = f"excap-review-video\0{token_id}\0{episode_id}\0{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def video_path(episode_id: str) -> str:
    return f"/v1/episodes/{quote(episode_id, safe='')}/review.mp4"


def signed_url(key: bytes, token_id: str, episode_id: str, now: float | None = None) -> tuple[str, int]:
    """The signed path of the episode's review video (with its query) and when it expires (Unix seconds)."""
    expires = int(now if now is not None else time.time()) + LIFETIME_S
    query = urlencode({"token_id": token_id, "expires": expires,
                       "signature": signature(key, token_id, episode_id, expires)})
    return f"{video_path(episode_id)}?{query}", expires


def verify(key: bytes, episode_id: str, query: dict[str, str], now: float | None = None) -> SignedVideo | None:
    """The signed request if `query` signs `episode_id` and has not expired, else None."""
    token_id, expires_text, given = (query.get(name, "") for name in PARAMETERS)
    well_formed = _HEX_8.fullmatch(token_id) and _HEX_64.fullmatch(given) and _DIGITS.fullmatch(expires_text)
    if not well_formed:
        return None
    expires = int(expires_text)
    expected = signature(key, token_id, episode_id, expires)
    if not hmac.compare_digest(expected, given) or expires < (now if now is not None else time.time()):
        return None
    return SignedVideo(token_id, episode_id, expires)

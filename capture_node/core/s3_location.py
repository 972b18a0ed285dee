"""An object-store address `s3://BUCKET[/PREFIX]` and the keys under it (push/pull, the uplink, remote index)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from excap.core.errors import ConfigError


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing '/', may be empty

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"{url!r}: expected s3://BUCKET[/PREFIX]")
        return cls(parsed.netloc, parsed.path.strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str | None:
        if not self.prefix:
            return key
        return key[len(self.prefix) + 1:] if key.startswith(self.prefix + "/") else None


__all__ = ["S3Location"]

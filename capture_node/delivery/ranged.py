"""A read-only, seekable file object over one S3 object that fetches only what is read (HTTP Range GETs).

Reads are served from blocks of `block_size` bytes kept in a small LRU cache, so HDF5's many small metadata reads
(superblock, object headers, attributes) cost a few requests. `bytes_fetched` and `requests` say what it cost.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

KiB = 1024


class RangedObject(io.RawIOBase):
    def __init__(self, s3: Any, bucket: str, key: str, size: int, block_size: int = 64 * KiB,
                 cache_blocks: int = 32) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.block_size, self.cache_blocks = block_size, cache_blocks
        self.position = 0
        self.bytes_fetched = 0
        self.requests = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"s3://{self.bucket}/{self.key}: seek before the start")
        self.position = base + offset
        return self.position

    def _block(self, index: int) -> bytes:
        block = self._cache.get(index)
        if block is not None:
            self._cache.move_to_end(index)
            return block
        start = index * self.block_size
        end = min(self.size, start + self.block_size) - 1
        answer = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}")
        block = answer["Body"].read()
        self.requests += 1
        self.bytes_fetched += len(block)
        self._cache[index] = block
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return block

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self.position))
        done = 0
        while done < wanted:
            index, offset = divmod(self.position, self.block_size)
            block = self._block(index)
            piece = block[offset:offset + wanted - done]
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
            self.position += len(piece)
        return done

"""A read-only, seekable file object over one S3 object that fetches only what is read (HTTP Range GETs).

HDF5 reads an episode's metadata as a few hundred small pieces (superblock, object headers, link and attribute
heaps) spread over the file. The object is read in pages of `page_size` bytes kept in a cache: the first request
fetches the head of the file (`head_size`, where the superblock and the root group live); after that a read that
misses the cache fetches the pages it needs in one request, and a run of misses on consecutive pages doubles the
read-ahead (up to `max_readahead`), so scattered headers cost one small page each and contiguous ones a few
requests. `bytes_fetched` and `requests` say what it cost.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

KiB = 1024
PAGE_SIZE = 1 * KiB
HEAD_SIZE = 8 * KiB
MAX_READAHEAD = 64 * KiB
CACHE_BYTES = 4 * 1024 * KiB


class RangedObject(io.RawIOBase):
    def __init__(self, s3: Any, bucket: str, key: str, size: int, page_size: int = PAGE_SIZE,
                 head_size: int = HEAD_SIZE, max_readahead: int = MAX_READAHEAD,
                 cache_bytes: int = CACHE_BYTES) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.page_size = page_size
        self.head_pages = max(1, -(-head_size // page_size))
        self.max_readahead_pages = max(1, max_readahead // page_size)
        self.cache_pages = max(self.head_pages, cache_bytes // page_size)
        self.position = 0
        self.bytes_fetched = 0
        self.requests = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._last_miss = -2
        self._readahead = 1
        self.error: Exception | None = None  # what failed a request (h5py reports only that a read failed)

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

    @property
    def _pages(self) -> int:
        return -(-self.size // self.page_size)

    def _fetch(self, first: int, last: int) -> None:
        """Fetch pages first..last (inclusive) in one Range GET and cache them."""
        start = first * self.page_size
        end = min(self.size, (last + 1) * self.page_size) - 1
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}")
            data = answer["Body"].read()
        except Exception as exc:  # the store's error, kept for the caller before h5py turns it into "read failed"
            self.error = exc
            raise
        self.requests += 1
        self.bytes_fetched += len(data)
        for index in range(first, last + 1):
            offset = (index - first) * self.page_size
            self._cache[index] = data[offset:offset + self.page_size]
            self._cache.move_to_end(index)
        while len(self._cache) > self.cache_pages:
            self._cache.popitem(last=False)

    def _page(self, index: int, last_needed: int) -> bytes:
        page = self._cache.get(index)
        if page is not None:
            self._cache.move_to_end(index)
            return page
        if self.requests == 0:
            last = max(last_needed, self.head_pages - 1) if index < self.head_pages else last_needed
        else:
            self._readahead = min(self._readahead * 2, self.max_readahead_pages) \
                if index == self._last_miss + 1 else 1
            last = max(last_needed, index + self._readahead - 1)
        last = min(last, self._pages - 1)
        while last > index and (last in self._cache):
            last -= 1
        self._fetch(index, last)
        self._last_miss = last
        return self._cache[index]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self.position))
        last_needed = (self.position + wanted - 1) // self.page_size if wanted else 0
        done = 0
        while done < wanted:
            index, offset = divmod(self.position, self.page_size)
            piece = self._page(index, last_needed)[offset:offset + wanted - done]
            if not piece:
                break
            view[done:done + len(piece)] = piece
            done += len(piece)
            self.position += len(piece)
        return done

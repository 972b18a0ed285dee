"""Reads the root attributes of a partial HDF5 file that a killed recorder left open for writing.

HDF5 marks a file as open for writing in its superblock and refuses to open it again until the mark is
cleared (what `h5clear` does). Recovery only needs the file's metadata, and must not change the file, so
it reads it through a view in which the superblock's mark is cleared and its checksum recomputed.
"""

import io
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 `hashlittle`, the checksum HDF5 puts on its metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    offset = 0
    while length > 12:
        x, y, z = struct.unpack_from("<III", data, offset)
        a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
        a = ((a - c) & _MASK) ^ _rot(c, 4); c = (c + b) & _MASK  # noqa: E702 - the reference's layout
        b = ((b - a) & _MASK) ^ _rot(a, 6); a = (a + c) & _MASK  # noqa: E702
        c = ((c - b) & _MASK) ^ _rot(b, 8); b = (b + a) & _MASK  # noqa: E702
        a = ((a - c) & _MASK) ^ _rot(c, 16); c = (c + b) & _MASK  # noqa: E702
        b = ((b - a) & _MASK) ^ _rot(a, 19); a = (a + c) & _MASK  # noqa: E702
        c = ((c - b) & _MASK) ^ _rot(b, 4); b = (b + a) & _MASK  # noqa: E702
        length -= 12
        offset += 12
    if length == 0:
        return c
    tail = data[offset:offset + length] + bytes(12 - length)
    x, y, z = struct.unpack("<III", tail)
    a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
    c = (c ^ b) - _rot(b, 14) & _MASK
    a = (a ^ c) - _rot(c, 11) & _MASK
    b = (b ^ a) - _rot(a, 25) & _MASK
    c = (c ^ b) - _rot(b, 16) & _MASK
    a = (a ^ c) - _rot(c, 4) & _MASK
    b = (b ^ a) - _rot(a, 14) & _MASK
    c = (c ^ b) - _rot(b, 24) & _MASK
    return int(c)


def cleared_superblock(head: bytes) -> bytes | None:
    """The file's first bytes with the superblock's open-for-writing flags cleared (version 2 and 3 only)."""
    if len(head) < 12 or not head.startswith(_SIGNATURE) or head[8] not in (2, 3):
        return None
    size = 12 + 4 * head[9] + 4
    if len(head) < size:
        return None
    block = bytearray(head[:size])
    if lookup3(bytes(block[:-4])) != struct.unpack_from("<I", block, size - 4)[0]:
        return None
    block[11] = 0
    struct.pack_into("<I", block, size - 4, lookup3(bytes(block[:-4])))
    return bytes(block)


class _Overlay(io.RawIOBase):
    """A read-only file whose first bytes are replaced."""

    def __init__(self, handle: io.BufferedReader, head: bytes) -> None:
        self._handle = handle
        self._head = head

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def readinto(self, buffer: Any) -> int:
        position = self._handle.tell()
        count = self._handle.readinto(buffer)
        if count and position < len(self._head):
            end = min(len(self._head), position + count)
            memoryview(buffer)[:end - position] = self._head[position:end]
        return count or 0


def partial_root_attrs(path: Path) -> dict[str, Any]:
    """Root attributes of a partial episode file, or {} if they cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = cleared_superblock(handle.read(64))
            if head is None:
                return {}
            handle.seek(0)
            with h5py.File(_Overlay(handle, head), "r") as episode:
                return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in episode.attrs.items()}
    except (OSError, RuntimeError, ValueError, KeyError):
        return {}

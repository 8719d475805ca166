"""Objects read from git's pack files in-process, without starting `git cat-file`.

Once the store is packed (maintenance, a bulk import), every commit reads a few packed trees;
a `cat-file` process for them costs 5-50 ms on a loaded machine, more than the rest of a
`bd create`. This reads pack index version 2 and pack version 2 as git writes them: an object is
found by binary search in each `.idx`, inflated with zlib, and rebuilt from its delta chain
(offset and reference deltas). Anything unexpected (another index version, a pack that went away
under a repack) returns None, and the caller asks git instead.
"""

from __future__ import annotations

import mmap
import os
import zlib
from pathlib import Path

KINDS = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
OFS_DELTA, REF_DELTA = 6, 7
MAX_CHAIN = 200


class Packs:
    def __init__(self, pack_dir: Path) -> None:
        self.pack_dir = pack_dir
        self._seen: tuple[str, ...] = ()
        self._packs: list[_Pack] = []

    def read(self, sha: str) -> tuple[str, bytes] | None:
        """(kind, contents) of a packed object, or None (not packed, or not readable here)."""
        binary = bytes.fromhex(sha)
        for attempt in range(2):
            if attempt or not self._packs:
                self._refresh()
            for pack in self._packs:
                try:
                    found = pack.read(binary, self)
                except (OSError, ValueError, IndexError, zlib.error):
                    found = None
                if found is not None:
                    return found
        return None

    def _refresh(self) -> None:
        try:
            names = tuple(sorted(n for n in os.listdir(self.pack_dir) if n.endswith(".idx")))
        except FileNotFoundError:
            names = ()
        if names == self._seen:
            return
        self._seen = names
        packs = []
        for name in names:
            try:
                packs.append(_Pack(self.pack_dir / name))
            except (OSError, ValueError):
                continue
        self._packs = packs

    def find(self, binary: bytes) -> tuple[_Pack, int] | None:
        for pack in self._packs:
            offset = pack.offset(binary)
            if offset is not None:
                return pack, offset
        return None


class _Pack:
    def __init__(self, idx_path: Path) -> None:
        idx = _map(idx_path)
        if idx[:8] != b"\377tOc\0\0\0\2":
            raise ValueError(f"{idx_path}: not a version 2 pack index")
        self.idx = idx
        self.count = int.from_bytes(idx[8 + 255 * 4 : 8 + 256 * 4], "big")
        self.names_at = 8 + 256 * 4
        self.offsets_at = self.names_at + self.count * 24  # after the names and the CRCs
        self.large_at = self.offsets_at + self.count * 4
        self.pack_path = idx_path.with_suffix(".pack")
        self._data: mmap.mmap | None = None

    @property
    def data(self) -> mmap.mmap:
        if self._data is None:
            self._data = _map(self.pack_path)
            if self._data[:4] != b"PACK":
                raise ValueError(f"{self.pack_path}: not a pack")
        return self._data

    def offset(self, binary: bytes) -> int | None:
        idx = self.idx
        first = binary[0]
        lo = int.from_bytes(idx[8 + (first - 1) * 4 : 8 + first * 4], "big") if first else 0
        hi = int.from_bytes(idx[8 + first * 4 : 12 + first * 4], "big")
        while lo < hi:
            mid = (lo + hi) // 2
            at = self.names_at + mid * 20
            name = idx[at : at + 20]
            if name == binary:
                at = self.offsets_at + mid * 4
                raw = int.from_bytes(idx[at : at + 4], "big")
                if raw & 0x80000000:
                    at = self.large_at + (raw & 0x7FFFFFFF) * 8
                    return int.from_bytes(idx[at : at + 8], "big")
                return raw
            if name < binary:
                lo = mid + 1
            else:
                hi = mid
        return None

    def read(self, binary: bytes, packs: Packs) -> tuple[str, bytes] | None:
        offset = self.offset(binary)
        if offset is None:
            return None
        return self._at(offset, packs, 0)

    def _at(self, offset: int, packs: Packs, depth: int) -> tuple[str, bytes] | None:
        if depth > MAX_CHAIN:
            raise ValueError("delta chain too long")
        data = self.data
        byte = data[offset]
        kind = (byte >> 4) & 7
        size = byte & 15
        shift, pos = 4, offset + 1
        while byte & 0x80:
            byte = data[pos]
            size |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        if kind in KINDS:
            return KINDS[kind], _inflate(data, pos, size)
        if kind == OFS_DELTA:
            byte = data[pos]
            back = byte & 0x7F
            pos += 1
            while byte & 0x80:
                byte = data[pos]
                back = ((back + 1) << 7) | (byte & 0x7F)
                pos += 1
            base = self._at(offset - back, packs, depth + 1)
        elif kind == REF_DELTA:
            where = packs.find(data[pos : pos + 20])
            pos += 20
            base = None if where is None else where[0]._at(where[1], packs, depth + 1)
        else:
            raise ValueError(f"pack entry of type {kind}")
        if base is None:
            return None
        return base[0], _apply_delta(base[1], _inflate(data, pos, size))


def _map(path: Path) -> mmap.mmap:
    with path.open("rb") as fh:  # the map outlives the file's descriptor
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _inflate(data: mmap.mmap, pos: int, size: int) -> bytes:
    inflater = zlib.decompressobj()
    out = b""
    step = size + 1024
    while len(out) < size and not inflater.eof:
        chunk = data[pos : pos + step]
        if not chunk:
            break
        pos += step
        out += inflater.decompress(chunk)
    if len(out) != size:
        raise ValueError("short object in pack")
    return out


def _varint(delta: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = delta[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _apply_delta(base: bytes, delta: bytes) -> bytes:
    source_size, pos = _varint(delta, 0)
    target_size, pos = _varint(delta, pos)
    if source_size != len(base):
        raise ValueError("delta does not fit its base")
    out = bytearray()
    while pos < len(delta):
        op = delta[pos]
        pos += 1
        if op & 0x80:
            start = length = 0
            for bit in range(4):
                if op & (1 << bit):
                    start |= delta[pos] << (8 * bit)
                    pos += 1
            for bit in range(3):
                if op & (1 << (4 + bit)):
                    length |= delta[pos] << (8 * bit)
                    pos += 1
            out += base[start : start + (length or 0x10000)]
        elif op:
            out += delta[pos : pos + op]
            pos += op
        else:
            raise ValueError("delta opcode 0")
    if len(out) != target_size:
        raise ValueError("delta gave the wrong size")
    return bytes(out)

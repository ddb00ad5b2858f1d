"""Verification data kept on disk and fetched per candidate: one byte record per slot.

Thumbnails and full ORB feature sets are read only for the few candidates a search judges, so
they need not be resident: records are appended to an unlinked temporary file (the page cache
holds what is hot; the kernel may drop the rest) and read back with ``pread``. Resident per
slot: its record's offset and length (12 bytes).
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

import numpy as np

from contentmatch_match.index.snapshot import FileSection, State


class BlobStore:
    """Append-only records by slot in an unlinked file; ``compacted`` drops dead slots."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self._used = 0
        self._off = np.zeros(64, np.int64)
        self._len = np.zeros(64, np.int32)  # 0: no record
        self._slots = 0

    def __len__(self) -> int:
        return self._slots

    @property
    def used_bytes(self) -> int:
        return self._used

    def _grow(self, need: int) -> None:
        if need <= len(self._off):
            return
        cap = max(need, 2 * len(self._off))
        self._off = np.concatenate([self._off, np.zeros(cap - len(self._off), np.int64)])
        self._len = np.concatenate([self._len, np.zeros(cap - len(self._len), np.int32)])

    def append(self, record: bytes | None) -> int:
        """Store the next slot's record (None or empty: the slot has none); its slot."""
        slot = self._slots
        self._grow(slot + 1)
        if record:
            os.pwrite(self._file.fileno(), record, self._used)
            self._off[slot], self._len[slot] = self._used, len(record)
            self._used += len(record)
        self._slots += 1
        return slot

    def append_empty(self, n: int) -> int:
        """``n`` slots without a record; the first slot."""
        first = self._slots
        self._grow(first + n)
        self._slots += n
        return first

    def append_shared(self, n: int, record: bytes) -> int:
        """``n`` slots sharing one record (synthetic bulk loads); the first slot."""
        first = self._slots
        self._grow(first + n)
        off = self._used
        os.pwrite(self._file.fileno(), record, off)
        self._used += len(record)
        self._off[first : first + n], self._len[first : first + n] = off, len(record)
        self._slots += n
        return first

    def has(self, slot: int) -> bool:
        return bool(self._len[slot])

    def get(self, slot: int) -> bytes | None:
        n = int(self._len[slot])
        if not n:
            return None
        return os.pread(self._file.fileno(), n, int(self._off[slot]))

    def compacted(self, live: np.ndarray) -> BlobStore:
        out = BlobStore(self.directory)
        for s in live.tolist():
            out.append(self.get(s))
        return out

    def memory_bytes(self) -> int:
        return int(self._off.nbytes + self._len.nbytes)

    def state(self) -> State:
        n = self._slots
        sections = {
            "off": self._off[:n].copy(),
            "len": self._len[:n].copy(),
            "data": FileSection(self._file.fileno(), self._used),
        }
        return {"slots": n, "used": self._used}, sections

    @classmethod
    def from_state(cls, meta: dict, sections: dict, directory: str | None = None) -> BlobStore:
        """The file section must have been read into a file of this store's directory (see
        ``sink``)."""
        out = cls.__new__(cls)
        out.directory = directory
        out._file = sections["data"]
        out._used = int(meta["used"])
        out._slots = int(meta["slots"])
        out._off = np.asarray(sections["off"], np.int64)
        out._len = np.asarray(sections["len"], np.int32)
        if len(out._off) != out._slots or out._file.seek(0, os.SEEK_END) != out._used:
            raise ValueError("blob store state does not hold its slots")
        return out

    @staticmethod
    def sink(directory: str | None = None) -> IO[bytes]:
        """A new file for a restored store's data."""
        return tempfile.TemporaryFile(dir=directory)

    def close(self) -> None:
        self._file.close()

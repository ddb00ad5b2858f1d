"""The snapshot container: an index's state as one versioned byte stream.

Layout (little endian)::

    b"CMINDEX\\n"  u32 format version  u64 header length  header (JSON)
    section bytes, in the header's order
    u64 trailer length  trailer (JSON: crc32 of every section)  b"CMEND\\n"

The header holds what the writer says about the state (``meta``: JSON values only) and the
list of sections (name, dtype, shape, bytes). A section is a numpy array or a file streamed in
chunks (the blob stores of verification data), so a snapshot is written and read without
holding a second copy of the index in memory. Readers refuse an unknown format version, a
truncated stream and a section whose checksum differs: a snapshot is either restored exactly
or not at all (the caller then replays the registry).

No pickle: nothing in a snapshot is executed, arrays are raw bytes of a fixed dtype.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

MAGIC = b"CMINDEX\n"
END = b"CMEND\n"
FORMAT_VERSION = 1
_CHUNK = 1 << 22
_DTYPES = {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"}
_DTYPES |= {"float32", "float64"}


class SnapshotError(ValueError):
    """A stream that is not a snapshot this build can restore (and why)."""


@dataclass(frozen=True)
class FileSection:
    """The first ``nbytes`` of an open file, streamed into the snapshot."""

    fd: int
    nbytes: int


Section = np.ndarray | FileSection
State = tuple[dict[str, Any], dict[str, Section]]  # (meta, sections)


def prefixed(prefix: str, state: State) -> State:
    """A component's state under ``prefix/`` (meta under the same key)."""
    meta, sections = state
    return {prefix: meta}, {f"{prefix}/{k}": v for k, v in sections.items()}


def sub(prefix: str, meta: dict[str, Any], sections: dict[str, Any]) -> tuple[dict, dict]:
    """The part of a restored state written with ``prefixed(prefix, ...)``."""
    p = prefix + "/"
    return meta[prefix], {k[len(p) :]: v for k, v in sections.items() if k.startswith(p)}


def write_snapshot(stream: IO[bytes], meta: dict[str, Any], sections: dict[str, Section]) -> int:
    """Write one snapshot; the number of bytes written."""
    listing = []
    for name, s in sections.items():
        if isinstance(s, FileSection):
            listing.append({"name": name, "file": True, "nbytes": int(s.nbytes)})
            continue
        a = np.ascontiguousarray(s)
        if a.dtype.name not in _DTYPES:
            raise TypeError(f"section {name}: dtype {a.dtype} cannot be snapshotted")
        listing.append(
            {"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "nbytes": a.nbytes}
        )
    header = json.dumps({"meta": meta, "sections": listing}, separators=(",", ":")).encode()
    out = stream.write(MAGIC + struct.pack("<IQ", FORMAT_VERSION, len(header)) + header) or 0
    crcs: dict[str, int] = {}
    for name, s in sections.items():
        crc = 0
        if isinstance(s, FileSection):
            pos = 0
            while pos < s.nbytes:
                chunk = os.pread(s.fd, min(_CHUNK, s.nbytes - pos), pos)
                if not chunk:
                    raise SnapshotError(f"section {name}: file shorter than {s.nbytes} bytes")
                crc = zlib.crc32(chunk, crc)
                stream.write(chunk)
                pos += len(chunk)
            out += s.nbytes
        else:
            raw = memoryview(np.ascontiguousarray(s)).cast("B")
            for i in range(0, len(raw), _CHUNK):
                crc = zlib.crc32(raw[i : i + _CHUNK], crc)
            stream.write(raw)
            out += len(raw)
        crcs[name] = crc
    trailer = json.dumps({"crc32": crcs}, separators=(",", ":")).encode()
    stream.write(struct.pack("<Q", len(trailer)) + trailer + END)
    return out + 8 + len(trailer) + len(END)


def _read_exact(stream: IO[bytes], n: int, what: str) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            raise SnapshotError(f"truncated snapshot: {what} ends after {got} of {n} bytes")
        got += k
    return bytes(buf) if n < _CHUNK else buf  # type: ignore[return-value]


def read_header(stream: IO[bytes]) -> dict[str, Any]:
    """The header of a snapshot (after checking its magic and format version)."""
    head = stream.read(len(MAGIC) + 12)
    if len(head) < len(MAGIC) + 12 or head[: len(MAGIC)] != MAGIC:
        raise SnapshotError("not an index snapshot (bad magic)")
    version, n = struct.unpack("<IQ", head[len(MAGIC) :])
    if version != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format version {version} is not readable by this build "
            f"(reads version {FORMAT_VERSION}): replay the registry instead"
        )
    if n > 1 << 30:
        raise SnapshotError("snapshot header too large")
    try:
        header = json.loads(_read_exact(stream, n, "header"))
    except json.JSONDecodeError as e:
        raise SnapshotError(f"snapshot header is not JSON: {e}") from e
    if not isinstance(header, dict) or "meta" not in header or "sections" not in header:
        raise SnapshotError("snapshot header lacks meta or sections")
    return header


def read_snapshot(
    stream: IO[bytes], file_sink: Callable[[str], IO[bytes]] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, sections) of a snapshot. Array sections come back as numpy arrays; file
    sections are copied into ``file_sink(name)`` (an open binary file) and come back as that
    file object."""
    header = read_header(stream)
    sections: dict[str, Any] = {}
    crcs: dict[str, int] = {}
    for s in header["sections"]:
        name, n = str(s["name"]), int(s["nbytes"])
        if s.get("file"):
            if file_sink is None:
                raise SnapshotError(f"section {name} is a file and no sink was given")
            f = file_sink(name)
            crc, left = 0, n
            while left:
                chunk = stream.read(min(_CHUNK, left))
                if not chunk:
                    raise SnapshotError(f"truncated snapshot: section {name}")
                crc = zlib.crc32(chunk, crc)
                f.write(chunk)
                left -= len(chunk)
            f.flush()
            sections[name], crcs[name] = f, crc
            continue
        dtype, shape = str(s["dtype"]), tuple(int(d) for d in s["shape"])
        if dtype not in _DTYPES:
            raise SnapshotError(f"section {name}: unknown dtype {dtype}")
        a = np.empty(shape, dtype=dtype)
        if a.nbytes != n:
            raise SnapshotError(f"section {name}: {n} bytes for shape {shape} of {dtype}")
        raw = memoryview(a.reshape(-1)).cast("B")
        got = 0
        while got < n:
            k = stream.readinto(raw[got:])  # type: ignore[attr-defined]
            if not k:
                raise SnapshotError(f"truncated snapshot: section {name}")
            got += k
        crc = 0
        for i in range(0, n, _CHUNK):
            crc = zlib.crc32(raw[i : i + _CHUNK], crc)
        sections[name], crcs[name] = a, crc
    (tn,) = struct.unpack("<Q", _read_exact(stream, 8, "trailer length"))
    trailer = json.loads(_read_exact(stream, tn, "trailer"))
    if _read_exact(stream, len(END), "end mark") != END:
        raise SnapshotError("snapshot end mark missing")
    for name, crc in crcs.items():
        if trailer["crc32"].get(name) != crc:
            raise SnapshotError(f"section {name}: checksum mismatch (corrupt snapshot)")
    return header["meta"], sections


def check_version(meta: dict[str, Any], kind: str, version: int) -> None:
    """Refuse the state of another kind of index, or of a version this build cannot read."""
    if meta.get("kind") != kind:
        raise SnapshotError(f"snapshot holds {meta.get('kind')!r}, expected {kind!r}")
    if meta.get("version") != version:
        raise SnapshotError(
            f"{kind} snapshot version {meta.get('version')} is not readable by this build "
            f"(reads version {version}): replay the registry instead"
        )

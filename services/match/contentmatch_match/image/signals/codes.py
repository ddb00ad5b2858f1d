"""Binary codes as FAISS stores them: uint8 rows, compared by Hamming distance."""

from __future__ import annotations

import numpy as np

POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hex_codes(h: str, nbytes: int) -> np.ndarray:
    b = bytes.fromhex(h)
    if len(b) != nbytes:
        raise ValueError(f"expected {nbytes * 8}-bit hash, got {len(b) * 8}")
    return np.frombuffer(b, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between uint8 arrays broadcastable to (n, nbytes)."""
    return POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int32)


def bits(code: np.ndarray) -> int:
    return int(POPCOUNT[code].sum())


def informative(code: np.ndarray, min_bits: int) -> bool:
    """Not a blank page: at least ``min_bits`` bits set and as many unset."""
    return min_bits <= bits(code) <= code.size * 8 - min_bits

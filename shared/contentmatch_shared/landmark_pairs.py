"""Landmark hashes from spectral peaks (the fingerprint service publishes them; the match index
reads the hash layout ``f1 << 13 | (df + 32) << 6 | dt`` only as an opaque key)."""

from __future__ import annotations

import numpy as np


def pair_peaks(
    t: np.ndarray, f: np.ndarray, *, fanout: int, dt_max: int, df_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hashes ``f1 << 13 | (df + 32) << 6 | dt`` of every anchor with its next ``fanout`` peaks
    inside the target zone (``1 <= dt <= dt_max`` frames, ``|df| <= df_max`` bins); returns
    (hashes, anchor frames) as uint32, sorted by frame. Peaks must be sorted by (t, f)."""
    t = np.asarray(t, dtype=np.int64)
    f = np.asarray(f, dtype=np.int64)
    hashes, anchors = [], []
    taken = np.zeros(len(t), np.int64)
    for k in range(1, 8 * fanout + 1):
        if k >= len(t):
            break
        dt = t[k:] - t[:-k]
        df = f[k:] - f[:-k]
        ok = (dt >= 1) & (dt <= dt_max) & (np.abs(df) <= df_max) & (taken[:-k] < fanout)
        idx = np.flatnonzero(ok)
        taken[idx] += 1
        hashes.append((f[idx] << 13) | ((df[idx] + 32) << 6) | dt[idx])
        anchors.append(t[idx])
    if not hashes:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    h = np.concatenate(hashes).astype(np.uint32)
    at = np.concatenate(anchors).astype(np.uint32)
    order = np.argsort(at, kind="stable")
    return h[order], at[order]

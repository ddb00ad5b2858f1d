"""Music in the background: query-side landmark hashes from the dense peaks.

Under speech or a louder track, the registered music's spectral peaks are no longer the strongest
ones of the query, so the query's landmarks (the strongest peaks, paired with their next few
neighbours) share few hashes with the reference's. The fingerprint service also sends the dense
peaks (``extra["landmark_peaks"]``: smaller neighbourhood, lower contrast, more per second, same
STFT and bins as the landmarks). Paired here with a larger fan-out, they contain most of the
reference's peak pairs even with foreground peaks in between; they are looked up in the same
landmark index and voted on the same way, with their own, higher acceptance count (many more
query hashes mean more chance agreement; calibrated on never-registered queries).

Both sides pair peaks with :func:`contentmatch_shared.landmark_pairs.pair_peaks`, so the hash
layouts agree by construction; a unit test checks it on the services' own paths.
"""

from __future__ import annotations

import numpy as np

from contentmatch_shared.landmark_pairs import pair_peaks as pair_landmark_peaks
from contentmatch_shared.peaks_payload import LANDMARK_PEAKS_KEY, decode_bin_peaks

# ------------------------------------------------------------------------------------ calibration
# Off: measured on the tuning corpus (bench-audio, 30 queries per row) it found 3-23 % of music
# under speech, and 2 of 8 covers of registered songs as false positives, at several times the
# query latency. docs/audio.md.
BG_ENABLED = False
BG_FANOUT = 12  # targets per anchor (the references pair with 3 of their sparser peaks)
BG_DT_MAX = 63  # frames, as the landmarks
BG_DF_MAX = 31  # bins, as the landmarks
BG_MIN_MATCHES = 10  # distinct agreeing query hashes on one offset (never-registered: <= 6 seen)
BG_MIN_DENSITY = 0.0  # most dense hashes are the foreground's: no density floor
BG_MAX_CANDIDATES = 30
# music under speech is heard in the pauses all along the clip; chance agreement bunches up (an
# unregistered synthetic track: 10 agreeing hashes within 1.5 s)
BG_MIN_SPAN_S = 3.0
BG_BUCKET = 3  # frames per offset bucket: the background music is not time-scaled


def dense_landmarks(extra: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(hashes uint32, frames uint32) of the query's dense peaks, or None without them."""
    if not isinstance(extra, dict) or not extra.get(LANDMARK_PEAKS_KEY):
        return None
    t, f = decode_bin_peaks(str(extra[LANDMARK_PEAKS_KEY]))
    return pair_peaks(t, f, BG_FANOUT)


def pair_peaks(t: np.ndarray, f: np.ndarray, fanout: int) -> tuple[np.ndarray, np.ndarray]:
    """The landmark pairing of the fingerprint service with a fan-out of ``fanout``."""
    order = np.lexsort((f, t))
    return pair_landmark_peaks(
        np.asarray(t)[order],
        np.asarray(f)[order],
        fanout=fanout,
        dt_max=BG_DT_MAX,
        df_max=BG_DF_MAX,
    )

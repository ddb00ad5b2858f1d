"""Thresholds of the audio index, in one frozen configuration, grouped by signal.

``AUDIO_MATCH`` is the calibrated default. Each field says what it decides; docs/audio.md tells
what each signal does and how the figures were set (``make bench-audio`` prints the evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChromaprintThresholds:
    """Chromaprint offset voting and bit-error verification (``index/audio.py``)."""

    key_bits: int = 16  # key = item >> 16; exact top-16 match rate: clean 0.63, noise 0.49
    bucket: int = 4  # items per diagonal bucket (0.5 s); two phases: drift of +-2 items stays
    min_votes: int = 2  # distinct query items agreeing on a bucket before it is verified
    max_candidates: int = 40  # buckets verified per query (plus one per 40 query items)
    scale_min: float = 0.95  # time-scale grid searched (tempo -5 .. +5 %) ...
    scale_max: float = 1.05
    scale_step: float = 0.01  # ... in steps of 1 %
    smooth: int = 9  # items (~1.1 s) of moving average before thresholding the per-item BER
    seg_ber: float = 0.33  # smoothed BER under which items belong to a matched run
    max_ber: float = 0.20  # a run's mean BER must be under this to count as a match ...
    long_seg_items: int = 32  # ... for runs this long (~4 s); shorter ones down to ...
    max_ber_short: float = 0.14  # ... this at min_seg_items
    min_seg_items: int = 12  # ~1.5 s of items (a 5 s clip has ~20 items)
    key_cap_factor: int = 40  # skip query keys whose posting list is > this x the mean list
    key_cap_min: int = 2000
    ber_random: float = 0.5  # BER of unrelated audio; score = 1 - BER / ber_random
    # silence, near-silence and one held frame: an item is static when the items static_lag
    # apart around it differ by fewer than static_bits bits on average
    static_lag: int = 8  # items (~1 s)
    static_bits: float = 2.5


@dataclass(frozen=True)
class LandmarkThresholds:
    """Landmark (peak pair) voting (``index/audio.py``)."""

    key_bits: int = 20
    bucket: int = 8  # frames per offset bucket (~0.19 s); two phases
    min_matches: int = 10  # distinct agreeing hashes (never-registered 10 s queries: <= 7 seen)
    min_density: float = 0.02  # ... and this fraction of the query's hashes in the matched span
    max_candidates: int = 20
    score_half: float = 20.0  # score = m / (m + score_half): 0.33 at the threshold, 0.83 at 100
    key_cap_factor: int = 60
    key_cap_min: int = 1000
    tempo_slack: float = 0.05  # time-scale tolerance when grouping votes into one segment
    tie_count_ratio: float = 0.6  # repeats of a loop: a runner-up with >= 0.6 x the votes ...
    tie_ber_margin: float = 0.03  # ... and a Chromaprint BER this much lower wins
    edge_gap_s: float = 2.0  # a few agreeing hashes this far from the rest at an edge: chance ...
    edge_min: int = 4  # ... unless there are at least this many; they do not stretch the span


@dataclass(frozen=True)
class TripletThresholds:
    """Pitch- and speed-invariant peak triplets (``index/audio_shift.py``)."""

    fanout: int = 4  # followers per anchor; every pair of them makes a triplet (6 per anchor)
    dt_min: int = 2  # frames between consecutive peaks of a triplet (simultaneous: no ratio)
    dt_max: int = 86  # frames (2 s) from the anchor to the last peak
    min_span: int = 8  # frames: shorter triplets give a noisy time ratio
    df_max: int = 24  # semitones between consecutive peaks of a triplet
    ratio_levels: int = 16  # quantisation of (t2 - t1) / (t3 - t1)
    probe_margin: float = 0.2  # of a step: closer to a boundary, the neighbour key is probed
    pitch_max: float = 5.0  # semitones of pitch shift searched
    scale_min: float = 0.80  # reference seconds per query second searched ...
    scale_max: float = 1.25
    scale_log_step: float = 0.004  # ... on a grid of this step in log scale
    pitch_bin: float = 0.5  # semitones per pitch bucket (neighbours merged: 1 semitone wide)
    offset_bin: int = 6  # frames per offset bucket on the scale grid
    fit_tol: float = 4.0  # frames: inlier residual after the least-squares fit
    min_inliers: int = 12  # distinct query triplets agreeing on one (pitch, scale, offset) ...
    min_anchors: int = 6  # ... with at least this many distinct anchor frames
    max_candidates: int = 4  # (work, pitch) groups verified per query (the largest)
    score_half: float = 20.0  # score = n / (n + score_half)
    key_cap_factor: int = 60  # skip keys with more than this x the mean postings
    key_cap_min: int = 1000
    # a work found by several signals: the triplets' segments and time scale lead when the copy
    # is shifted by this much (Chromaprint searches +-5 % only, the landmarks neither)
    lead_pitch: float = 0.5  # semitones
    lead_scale: float = 0.04
    # not searched when Chromaprint segments cover this much of the query ...
    skip_coverage: float = 0.9
    skip_ber: float = 0.12  # ... at this BER or lower (a 10 % stretch: 0.16-0.2)
    edge_pad_s: float = 0.25  # segment edges: peaks are sparse, the audio reaches further


@dataclass(frozen=True)
class BackgroundThresholds:
    """Registered music under a louder foreground (``index/audio_background.py``)."""

    enabled: bool = True
    # pair hashes of nearby reference peaks find the candidates
    pair_dt_max: int = 12  # frames (0.28 s) from a peak to the peaks paired with it ...
    pair_df_max: int = 24  # ... within this many bins (260 Hz)
    bucket: int = 4  # frames per offset bucket of the candidate vote; two phases
    min_votes: int = 3  # distinct query pairs agreeing on a (work, offset bucket)
    max_candidates: int = 24  # buckets looked at; their works are verified
    key_cap_factor: int = 60  # skip keys with more than this x the mean postings
    key_cap_min: int = 1000
    # verification: single peaks at one consistent offset
    bin_tol: int = 0  # a reference peak is found when a query peak lies this many bins away ...
    frame_tol: int = 0  # ... and this many frames (exact: both sides come from one STFT grid)
    null_window: int = 400  # frames either side of the best offset whose counts are the null
    min_z: float = 8.0  # accepted when the best offset's count is this many sigmas above it ...
    # ... and the runner-up offset within the query's length (further than runner_exclude
    # frames) has at most this share of its excess: a pattern repeating inside the query (a loop
    # shared by two tracks) agrees at every repeat, a work's whole music at one offset only
    max_runner_ratio: float = 0.6
    runner_exclude: int = 8
    min_span_s: float = 3.0  # ... and its coincidences spread over this many seconds
    edge_gap_s: float = 1.5  # a few coincidences this far from the rest at an edge are chance
    edge_min: int = 4  # ... unless there are this many
    score_half: float = 10.0  # score = z / (z + score_half)


@dataclass(frozen=True)
class AudioMatchConfig:
    chromaprint: ChromaprintThresholds = field(default_factory=ChromaprintThresholds)
    landmarks: LandmarkThresholds = field(default_factory=LandmarkThresholds)
    triplets: TripletThresholds = field(default_factory=TripletThresholds)
    background: BackgroundThresholds = field(default_factory=BackgroundThresholds)


AUDIO_MATCH = AudioMatchConfig()

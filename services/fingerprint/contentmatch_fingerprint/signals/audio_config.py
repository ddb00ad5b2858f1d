"""Parameters of the audio signals the fingerprint service extracts, in one frozen configuration.

Changing one changes the payloads of newly fingerprinted files (re-fingerprint the works:
``contentmatch refingerprint-works``). The match service's thresholds are in
``contentmatch_match.index.audio_config``; docs/audio.md tells how the figures were set.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LandmarkParams:
    """Landmarks (``signals/audio.py``): spectral peaks in 300-3000 Hz paired into (f1, df, dt)
    hashes; they survive telephone band-pass and echo, where chroma does not."""

    nfft: int = 512
    hop: int = 256  # 43.07 frames/s
    bin_lo: int = 14  # 301 Hz ...
    bin_hi: int = 140  # ... to 3015 Hz (exclusive); 126 bins, 7 bits
    peak_frames: int = 6  # local-maximum neighbourhood: +-6 frames (140 ms) ...
    peak_bins: int = 6  # ... and +-6 bins (129 Hz)
    mean_bins: int = 33  # bins of the local mean behind the peak contrast
    contrast_db: float = 6.0  # above that mean
    peaks_per_s: int = 10  # strongest peaks kept per second
    fanout: int = 3  # targets per anchor
    dt_max: int = 63  # frames (1.46 s)
    df_max: int = 31  # bins
    block: int = 1024  # STFT frames per peak-picking block (~24 s: bounded memory)


@dataclass(frozen=True)
class PeakParams:
    """Log-frequency peaks for the pitch- and speed-invariant triplets (``audio_peaks.py``)."""

    nfft: int = 1024
    hop: int = 256  # 43.07 frames/s
    fmin: float = 250.0  # Hz: below, one linear bin is most of a semitone
    fmax: float = 4000.0  # Hz: the decoder low-passes at ~4.4 kHz
    bins_per_semitone: int = 3
    nbhd_semitones: float = 2.0  # local maximum over +-2 semitones ...
    nbhd_frames: int = 5  # ... and +-5 frames (116 ms)
    contrast_db: float = 6.0  # above the mean of a wide neighbourhood (EQ tilt and level)
    mean_semitones: float = 6.0  # half-width of that neighbourhood in frequency ...
    mean_frames: int = 5  # ... and in time
    # a Hann-windowed full-scale sine is ~ +48 dB in these units; -60 dBFS keeps quiet passages
    # and drops near-silence (a -78 dBFS noise floor) and digital silence
    floor_db: float = -12.0
    peaks_per_s: int = 12
    block: int = 1024  # frames per peak-picking block (bounded memory)


@dataclass(frozen=True)
class BackgroundParams:
    """Peaks for registered music under a louder foreground (``signals/audio_background.py``)."""

    sample_rate: int = 11025
    hop: int = 256  # the peak stream's STFT (1024-point Hann): 43.07 frames/s, 10.8 Hz bins
    bin_lo: int = 28  # 301 Hz ...
    bin_hi: int = 280  # ... to 3015 Hz (exclusive): 252 bins, one byte
    floor_db: float = -12.0  # ~ -60 dBFS: silence and near-silence have no peaks
    # reference peaks: the music's own constellation (what the index stores)
    ref_nbhd_frames: int = 3  # local maximum over +-3 frames ...
    ref_nbhd_bins: int = 6  # ... and +-6 bins (65 Hz)
    ref_mean_frames: int = 6  # contrast against the mean of +-6 frames ...
    ref_mean_bins: int = 16  # ... and +-16 bins
    ref_contrast_db: float = 3.0
    ref_per_s: int = 28  # strongest per second, budgeted per quarter second
    # query peaks: every small maximum of the whitened spectrum (the music under a foreground)
    query_nbhd_frames: int = 2  # local maximum over +-2 frames ...
    query_nbhd_bins: int = 4  # ... and +-4 bins
    query_whiten_bins: int = 7  # each frame minus its moving average over +-7 bins ...
    query_contrast_db: float = 3.0  # ... by this much
    query_per_s: int = 200  # a cap (a 10 s query has ~1,300)


@dataclass(frozen=True)
class AudioFingerprintConfig:
    landmarks: LandmarkParams = field(default_factory=LandmarkParams)
    peaks: PeakParams = field(default_factory=PeakParams)
    background: BackgroundParams = field(default_factory=BackgroundParams)


AUDIO_FINGERPRINT = AudioFingerprintConfig()

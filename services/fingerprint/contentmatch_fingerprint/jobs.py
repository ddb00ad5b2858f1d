"""Fingerprint jobs that run in worker processes (decoding and hashing never touch the event loop).

Each job takes a file path, so large media is not pickled across the process boundary.
"""

from __future__ import annotations

from pathlib import Path

from contentmatch_shared.decode_limits import MB, Budget, DecodeLimits
from contentmatch_shared.decode_sandbox import admit
from contentmatch_shared.errors import MediaError
from contentmatch_shared.fingerprints import AudioFingerprint, ImageFingerprint
from contentmatch_shared.media import SNIFF_BYTES, sniff
from contentmatch_shared.provenance import Provenance

# Reading provenance parses containers and metadata (and decodes an image for a watermark): a
# fixed share plus a few copies of the file, and CPU in proportion to its size.
PROVENANCE_FIXED_BYTES = 160 * MB
PROVENANCE_BYTES_PER_FILE_BYTE = 4
PROVENANCE_CPU_BASE_S = 5.0
PROVENANCE_CPU_S_PER_MB = 0.5


def sniff_file(path: str) -> str | None:
    with open(path, "rb") as fh:
        sniffed = sniff(fh.read(SNIFF_BYTES))
    return sniffed.media_type if sniffed else None


def fingerprint_image_file(path: str) -> ImageFingerprint:
    from contentmatch_fingerprint.signals.image import fingerprint_image

    return fingerprint_image(Path(path).read_bytes())


def fingerprint_audio_file(path: str) -> AudioFingerprint:
    from contentmatch_fingerprint.signals.audio import fingerprint_audio

    return fingerprint_audio(path)


def fingerprint_file(path: str, media_type: str) -> ImageFingerprint | AudioFingerprint:
    if media_type == "image":
        return fingerprint_image_file(path)
    if media_type == "audio":
        return fingerprint_audio_file(path)
    raise MediaError("unsupported_media_type", f"cannot fingerprint media type {media_type!r}")


def provenance_budget(limits: DecodeLimits, size: int) -> Budget:
    cpu_s = PROVENANCE_CPU_BASE_S + PROVENANCE_CPU_S_PER_MB * size / MB
    memory = PROVENANCE_FIXED_BYTES + PROVENANCE_BYTES_PER_FILE_BYTE * size
    return Budget(
        cpu_s=cpu_s,
        wall_s=limits.wall_for(cpu_s),
        memory_bytes=min(memory, limits.job_memory_bytes),
    )


def read_provenance_file(path: str, media_type: str, limits: DecodeLimits) -> Provenance:
    """Every provenance reader's evidence about the file (readers in ``signals.provenance``)."""
    from contentmatch_fingerprint.signals.provenance import read_provenance

    size = Path(path).stat().st_size
    admit(provenance_budget(limits, size))
    return read_provenance(Path(path).read_bytes(), media_type)


def warm_up() -> None:
    """Import the heavy libraries once per worker, before the first real job: a job runs under
    the sandbox's memory ceiling, which mapping a library's code must not count against."""
    import scipy.fft  # noqa: F401  (the landmark STFT)
    from PIL import Image

    from contentmatch_fingerprint.signals import audio, image
    from contentmatch_fingerprint.signals.provenance import c2pa

    Image.init()  # every format plugin, not only the first few
    audio._chromaprint_lib()
    image._get_orb()
    image._get_orb(image.ORB_FAST_LOW)
    c2pa.warm_up()  # the SDK and its trust lists, once per worker

"""Cost of reading provenance per file, next to the fingerprint it rides along with.

Files are generated (images from ``tests.fixtures.images``, music from ``tests.fixtures.audio``)
and signed with a generated C2PA chain. For each case it prints the median milliseconds per file
of the provenance readers alone (no pixel or sample decode: what the extra sandbox job costs),
of the fingerprint (decode included), and their ratio.

    make bench-provenance    (BENCH_ARGS="--files 12")
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from contentmatch_fingerprint import jobs
from contentmatch_fingerprint.signals.provenance import read_provenance
from contentmatch_fingerprint.signals.provenance.c2pa import TrustLists, read_c2pa
from contentmatch_shared.decode_limits import DecodeLimits
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.settings import Settings
from tests.fixtures import c2pa_media as cm
from tests.fixtures.audio import make_track, write_wav
from tests.fixtures.images import make_image, to_bytes


def _median_ms(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _per_file(files: list[bytes], fn: Callable[[bytes], object]) -> float:
    fn(files[0])  # warm: contexts, imports
    return statistics.median(_median_ms(lambda d=d: fn(d)) for d in files)


async def _in_sandbox(path: Path, media_type: str, runs: int) -> tuple[float, float]:
    """Median ms of the whole provenance job and of the fingerprint job, each through the
    service's decoding sandbox (one worker): what the extra job adds per file."""
    pool = SandboxPool("bench", 1, DecodeLimits.from_settings(Settings()), jobs.warm_up)
    pool.start()
    try:
        limits = pool.limits
        await pool.run(jobs.read_provenance_file, str(path), media_type, limits)
        await pool.run(jobs.fingerprint_file, str(path), media_type)
        prov, fp = [], []
        for _ in range(runs):
            started = time.perf_counter()
            await pool.run(jobs.read_provenance_file, str(path), media_type, limits)
            prov.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await pool.run(jobs.fingerprint_file, str(path), media_type)
            fp.append((time.perf_counter() - started) * 1000)
        return statistics.median(prov), statistics.median(fp)
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    args = parser.parse_args()
    chain = cm.TestChain.new()
    untrusted = TrustLists.shipped()
    trusted = TrustLists.shipped(operator=chain.root_pem.decode())
    manifest = cm.created_manifest(training_mining={"c2pa.ai_training": "notAllowed"})

    images = [to_bytes(make_image(9000 + i), "JPEG", quality=90) for i in range(args.files)]
    signed = [cm.sign(d, "image/jpeg", manifest, chain) for d in images]
    with tempfile.TemporaryDirectory() as tmp:
        tracks = []
        for i in range(max(2, args.files // 4)):
            path = Path(tmp) / f"t{i}.wav"
            write_wav(path, make_track(9100 + i, seconds=30.0))
            tracks.append(path.read_bytes())
        signed_tracks = [cm.sign(t, "audio/wav", manifest, chain) for t in tracks]

        def fingerprint(media_type: str) -> Callable[[bytes], object]:
            def run(data: bytes) -> object:
                path = Path(tmp) / "media"
                path.write_bytes(data)
                return jobs.fingerprint_file(str(path), media_type)

            return run

        rows = [
            ("image jpeg 640x480, no manifest", images, "image", None),
            ("image jpeg, C2PA, signer untrusted", signed, "image", untrusted),
            ("image jpeg, C2PA, signer trusted", signed, "image", trusted),
            ("audio wav 30 s, no manifest", tracks, "audio", None),
            ("audio wav 30 s, C2PA, signer trusted", signed_tracks, "audio", trusted),
        ]
        print(f"{'case':40} {'c2pa ms':>8} {'all readers ms':>15} {'fingerprint ms':>15} "
              f"{'readers/fingerprint':>20}")  # fmt: skip
        for name, files, media_type, trust in rows:
            c2pa_ms = _per_file(files, lambda d, m=media_type, t=trust: read_c2pa(d, m, t))
            readers_ms = _per_file(files, lambda d, m=media_type: read_provenance(d, m))
            fp_ms = _per_file(files[:4], fingerprint(media_type))
            print(
                f"{name:40} {c2pa_ms:8.2f} {readers_ms:15.2f} {fp_ms:15.1f} "
                f"{readers_ms / fp_ms:20.3f}"
            )

        print("\nthrough the decoding sandbox (one worker): provenance job vs fingerprint job")
        for name, data, media_type in (
            ("image jpeg 640x480, no manifest", images[0], "image"),
            ("image jpeg, C2PA", signed[0], "image"),
            ("audio wav 30 s, no manifest", tracks[0], "audio"),
        ):
            path = Path(tmp) / "sandboxed"
            path.write_bytes(data)
            prov_ms, fp_ms = asyncio.run(_in_sandbox(path, media_type, runs=7))
            print(f"{name:40} provenance job {prov_ms:7.2f} ms   fingerprint job {fp_ms:7.1f} ms"
                  f"   ratio {prov_ms / fp_ms:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

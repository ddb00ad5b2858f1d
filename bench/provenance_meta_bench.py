# ruff: noqa: E501  (wide benchmark tables)
"""Cost of the metadata provenance signals per file, and what they add to fingerprinting.

    .venv/bin/python -m bench.provenance_meta_bench [--repeat 15]

Files are generated (tests/fixtures): photos without provenance (JPEG 1024 px and 12 MP, PNG
1024 px), the same with XMP/IPTC, with AUTOMATIC1111/ComfyUI text chunks after the image data,
with EXIF; SDXL-marked PNGs; MP3 with and without tags. Each signal is timed alone (median of
``--repeat`` runs, one process, one thread), "decode excluded" from pixels or parsed facts already
in memory and "decode included" from the file's bytes. Then the fingerprint of files without
provenance with and without the provenance added to the image signals (ISCC, watermark), and the
readers of the bytes (XMP, PNG text, EXIF) as a share of the fingerprint's time. Prints tables;
asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contentmatch_fingerprint.signals import image as image_signals  # noqa: E402
from contentmatch_fingerprint.signals.provenance import (  # noqa: E402
    audio_tags,
    exif,
    iscc,
    png_chunks,
    watermark,
    xmp,
)
from contentmatch_fingerprint.signals.provenance.generator_text import generator_claims  # noqa: E402
from contentmatch_shared.thumb_payload import decode_thumb  # noqa: E402
from tests.fixtures.images import make_image  # noqa: E402
from tests.fixtures.provenance_media import (  # noqa: E402
    A1111_PARAMETERS,
    audio_with_tags,
    comfy_texts,
    encode,
    jpeg_with_xmp,
    png_with_chunks,
    text_chunk,
    textured,
    watermarked,
    xmp_packet,
)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU milliseconds of ``fn`` in this process (one warm-up run first): CPU time, not
    wall time, so other load on the machine changes the figures little."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        runs.append(time.process_time() - t0)
    return statistics.median(runs) * 1000


def timed_pair(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median CPU milliseconds of ``a`` and ``b``, run alternately (drift hits both alike)."""
    a()
    b()
    runs_a, runs_b = [], []
    for _ in range(repeat):
        for fn, runs in ((a, runs_a), (b, runs_b)):
            t0 = time.process_time()
            fn()
            runs.append(time.process_time() - t0)
    return statistics.median(runs_a) * 1000, statistics.median(runs_b) * 1000


def metadata_readers(data: bytes) -> int:
    """What the metadata readers of the bytes do for an image: XMP, PNG text, EXIF."""
    walked = png_chunks.walk(data) if png_chunks.is_png(data) else None
    facts, _ = xmp.read_xmp(data, walked.xmp_packets if walked else None)
    claims = generator_claims({c.keyword: c.text for c in walked.texts}) if walked else []
    found = exif.read_exif_block(walked.exif) if walked and walked.exif else exif.read_exif(data)
    return len(facts) + len(claims) + int(not found.empty)


def signals_only(hasher: image_signals.ImageHasher, data: bytes) -> object:
    """``hasher.fingerprint(data)`` without the provenance of the pixels (the baseline)."""
    rgb, w, h = image_signals.decode_image(data)
    return hasher.fingerprint_rgb(rgb, w, h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--marked", type=int, default=20, help="marked pictures per kind and mark")
    parser.add_argument("--clean", type=int, default=100, help="clean pictures per kind")
    args = parser.parse_args()
    r = args.repeat

    photo = make_image(8850, (1024, 768))
    big = make_image(8851, (4000, 3000))
    ai_xmp = xmp_packet(digital_source_type="trainedAlgorithmicMedia", ai_system="Firefly")
    marked = Image.fromarray(watermarked(textured(8852, (1024, 1024)), "SDXL"))
    files = {
        "JPEG 1024 px, none": encode(photo, "JPEG", quality=90),
        "JPEG 1024 px, XMP (IPTC AI)": jpeg_with_xmp(ai_xmp, photo),
        "JPEG 12 MP, none": encode(big, "JPEG", quality=90),
        "PNG 1024 px, none": encode(photo, "PNG"),
        "PNG 1024 px, A1111 + ComfyUI text after IDAT": png_with_chunks(
            after=[text_chunk("parameters", A1111_PARAMETERS), *comfy_texts()], img=photo
        ),
        "PNG 1024x1024, SDXL mark": encode(marked, "PNG"),
    }

    print("## Metadata readers of the bytes (XMP scan + PNG chunk walk + EXIF), per file")
    print("| file | bytes | found | ms |")
    print("|---|---:|---:|---:|")
    for name, data in files.items():
        ms = timed(lambda d=data: metadata_readers(d), r)
        print(f"| {name} | {len(data):,} | {metadata_readers(data)} | {ms:.2f} |")

    print("\n## Pixel signals: decode excluded (pixels in memory) and included (from the bytes)")
    print("| signal | file | excluded ms | included ms |")
    print("|---|---|---:|---:|")
    for name in ("PNG 1024 px, none", "PNG 1024x1024, SDXL mark"):
        data = files[name]
        pixels = watermark.lossless_pixels(data)
        assert pixels is not None
        ex = timed(lambda p=pixels: watermark.find_marks(p), r)
        inc = timed(lambda d=data: watermark.read_watermark(d), r)
        print(
            f"| SD/SDXL watermark ({len(watermark.find_marks(pixels))} found) | {name} | {ex:.1f} | {inc:.1f} |"
        )
    rgb, _, _ = image_signals.decode_image(files["JPEG 1024 px, none"])
    ex = timed(lambda: iscc.image_code(rgb), r)
    inc = timed(
        lambda: iscc.image_code(image_signals.decode_image(files["JPEG 1024 px, none"])[0]), r
    )
    print(
        f"| ISCC Image-Code from every pixel of the working copy | JPEG 1024 px | {ex:.2f} | {inc:.1f} |"
    )
    thumb = image_signals.grey_thumbnail(rgb)
    grey = decode_thumb(thumb)
    print(
        f"| ISCC Image-Code from the grey thumbnail (as computed) | JPEG 1024 px | "
        f"{timed(lambda: iscc.image_code_of_grey(grey), r):.2f} | - |"
    )
    items = (
        np.random.default_rng(0)
        .integers(0, 2**32, int(8.08 * 180), dtype=np.uint64)
        .astype(np.uint32)
    )
    print(
        f"| ISCC Audio-Code (3 min of Chromaprint items) | - | {timed(lambda: iscc.audio_code(items), r):.2f} | - |"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tagged = audio_with_tags(Path(tmp) / "t.mp3", {"ISRC": "USRC17607839", "comment": "x"}, 30)
        plain = audio_with_tags(Path(tmp) / "p.mp3", {}, 30)
        for label, path in (("MP3 30 s, ISRC + comment", tagged), ("MP3 30 s, no tags", plain)):
            data = path.read_bytes()
            ms = timed(lambda d=data: audio_tags.read_audio_tags(io.BytesIO(d)), r)
            scan = timed(lambda d=data: xmp.read_xmp(d), r)
            print(f"| audio tags (+ XMP scan) | {label} | {ms:.2f} (+{scan:.2f}) | - |")

    print(
        "\n## Fingerprinting files without provenance: image signals with and without ISCC + watermark"
    )
    print("| file | without ms | with ms | ratio | + metadata readers ms | share of fingerprint |")
    print("|---|---:|---:|---:|---:|---:|")
    hasher = image_signals.ImageHasher()
    for name in ("JPEG 1024 px, none", "PNG 1024 px, none", "JPEG 12 MP, none"):
        data = files[name]
        with_ms, without_ms = timed_pair(
            lambda d=data: hasher.fingerprint(d), lambda d=data: signals_only(hasher, d), r
        )
        readers_ms = timed(lambda d=data: metadata_readers(d), r)
        print(
            f"| {name} | {without_ms:.1f} | {with_ms:.1f} | {with_ms / without_ms:.3f} | "
            f"{readers_ms:.2f} | {readers_ms / with_ms:.1%} |"
        )
    watermark_figures(args.marked, args.clean)


def watermark_figures(n_marked: int, n_clean: int) -> None:
    """Recall on pictures marked by the package's own encoder (as SD 1.x and SDXL mark them,
    saved losslessly) and the best agreement any clean picture reaches."""
    print("\n## SD/SDXL watermark: marked copies found, clean pictures' best agreement")
    print("| pictures | mark | found | of |")
    print("|---|---|---:|---:|")
    kinds = {
        "photo-like (make_image)": lambda s, n: np.asarray(make_image(s, (n, n)).convert("RGB")),
        "textured": lambda s, n: textured(s, (n, n)),
    }
    for side in (512, 1024):  # 1024 px pictures are first decoded in bands (sampled_agreements)
        for label, make in kinds.items():
            for mark in watermark.MARKS:
                found = sum(
                    any(
                        f.mark == mark.name
                        for f in watermark.find_marks(watermarked(make(s, side), mark.name))
                    )
                    for s in range(8900, 8900 + n_marked)
                )
                print(f"| {label}, {side} px | {mark.name} | {found} | {n_marked} |")
    best = {m.name: 0 for m in watermark.MARKS}
    hits = 0
    for s in range(9000, 9000 + n_clean):
        for make in kinds.values():
            agreed = watermark.agreements(make(s, 512))
            hits += any(a >= watermark.THRESHOLDS[m] for (m, _), a in agreed.items())
            for (m, _), a in agreed.items():
                best[m] = max(best[m], a)
    print(
        "\n| mark | bits | threshold | best agreement on clean pictures | clean pictures over it |"
    )
    print("|---|---:|---:|---:|---:|")
    for mark in watermark.MARKS:
        n = len(mark.bits)
        print(
            f"| {mark.name} | {n} | {watermark.THRESHOLDS[mark.name]} | {best[mark.name]} | "
            f"{hits} of {2 * n_clean} |"
        )


if __name__ == "__main__":
    main()

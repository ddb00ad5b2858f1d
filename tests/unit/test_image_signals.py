"""Image fingerprinting: safe decoding, hash stability, variants, payload size."""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from contentmatch_fingerprint.signals.image import (
    MAX_PIXELS,
    decode_image,
    fingerprint_image,
)
from contentmatch_shared.errors import MediaError
from contentmatch_shared.orb_payload import decode_orb
from tests.fixtures.images import make_image, to_bytes, transform, transform_bytes

pytestmark = pytest.mark.unit


def _ham(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.fixture(scope="module")
def img() -> Image.Image:
    return make_image(7, (480, 360))


@pytest.fixture(scope="module")
def fp(img):
    return fingerprint_image(to_bytes(img))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries (almost) no data: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_fingerprint_shape_and_payload(fp, img):
    assert (fp.width, fp.height) == img.size
    assert len(fp.hashes["phash"]) == 16 and len(fp.hashes["dhash"]) == 16
    assert len(fp.hashes["pdq"]) == 64
    v = fp.extra["variants"]
    assert len(v["pdq_dihedral"].split(",")) == 8
    assert v["pdq_dihedral"].split(",")[0] == fp.hashes["pdq"]
    orb = fp.extra["orb"]
    desc, kp, w, h = decode_orb(orb)
    assert desc.shape == (orb["n"], 32) and orb["n"] >= 200
    assert (kp[:, 0] <= w).all() and (kp[:, 1] <= h).all()
    assert len(fp.model_dump_json()) < 64 * 1024
    assert "trim_box" not in v  # no border on a generated image


def test_function_is_picklable_and_deterministic(fp, img):
    f = pickle.loads(pickle.dumps(fingerprint_image))
    again = f(to_bytes(img))
    assert again.hashes == fp.hashes


def test_reencoded_copies_hash_close(fp, img):
    for name in ("resize_third", "jpeg_q20", "webp_small"):
        data, _ = transform_bytes(img, name, seed=1)
        q = fingerprint_image(data)
        assert _ham(q.hashes["phash"], fp.hashes["phash"]) <= 6, name
        assert _ham(q.hashes["pdq"], fp.hashes["pdq"]) <= 40, name


def test_unrelated_images_hash_far(fp):
    for seed in (100, 101, 102):
        other = fingerprint_image(to_bytes(make_image(seed, (480, 360))))
        assert _ham(other.hashes["phash"], fp.hashes["phash"]) > 14
        assert _ham(other.hashes["pdq"], fp.hashes["pdq"]) > 70


def test_mirror_variant_matches_original(fp, img):
    q = fingerprint_image(to_bytes(ImageOps.mirror(img)))
    assert _ham(q.extra["variants"]["phash_mirror"], fp.hashes["phash"]) <= 4
    assert (
        min(_ham(h, fp.hashes["pdq"]) for h in q.extra["variants"]["pdq_dihedral"].split(",")) <= 31
    )


def test_border_is_trimmed(fp, img):
    q = fingerprint_image(transform_bytes(img, "border_15", seed=3)[0])
    v = q.extra["variants"]
    x, y, w, h = v["trim_box"]
    assert abs(x - 0.15 / 1.3) < 0.02 and abs(w - 1 / 1.3) < 0.02
    assert abs(y - 0.15 / 1.3) < 0.02 and abs(h - 1 / 1.3) < 0.02
    assert _ham(v["phash_trim"], fp.hashes["phash"]) <= 6
    assert _ham(q.hashes["phash"], fp.hashes["phash"]) > 6  # the untrimmed hash alone misses


def test_decompression_bomb_refused():
    data = _png_header_only(20_000, 20_000)  # 400 megapixels declared, 80 bytes sent
    with pytest.raises(MediaError) as e:
        fingerprint_image(data)
    assert e.value.code == "image_too_large"
    side = int(MAX_PIXELS**0.5) + 10
    with pytest.raises(MediaError) as e:
        fingerprint_image(_png_header_only(side, side))
    assert e.value.code == "image_too_large"


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_garbage_refused(data):
    with pytest.raises(MediaError) as e:
        fingerprint_image(data)
    assert e.value.code == "undecodable_image"
    assert "object at 0x" not in e.value.message


def test_truncated_jpeg_refused(img):
    data = to_bytes(img, "JPEG", quality=90)
    with pytest.raises(MediaError) as e:
        fingerprint_image(data[: len(data) // 2])
    assert e.value.code == "undecodable_image"


def test_tiny_image_refused():
    with pytest.raises(MediaError) as e:
        fingerprint_image(to_bytes(Image.new("RGB", (8, 8), "red")))
    assert e.value.code == "image_too_small"


def test_media_error_survives_pickling():
    e = pickle.loads(pickle.dumps(MediaError("image_too_large", "x")))
    assert e.code == "image_too_large" and e.message == "x"


def test_exif_orientation_applied(fp, img):
    # Stored rotated on its side, with EXIF saying "rotate 90 CW to display" (orientation 6).
    stored = img.transpose(Image.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    q = fingerprint_image(buf.getvalue())
    assert (q.width, q.height) == img.size
    assert _ham(q.hashes["phash"], fp.hashes["phash"]) <= 6


def test_alpha_and_palette_composited_on_white(img):
    rgba = img.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:, : a.shape[1] // 2, 3] = 0  # left half fully transparent
    rgba = Image.fromarray(a, "RGBA")
    expected = Image.alpha_composite(Image.new("RGBA", img.size, "white"), rgba).convert("RGB")
    q = fingerprint_image(to_bytes_any(rgba, "PNG"))
    ref = fingerprint_image(to_bytes(expected))
    assert _ham(q.hashes["phash"], ref.hashes["phash"]) <= 2
    pal = img.convert("P", palette=Image.ADAPTIVE, colors=64)
    qp = fingerprint_image(to_bytes_any(pal, "GIF"))
    assert _ham(qp.hashes["phash"], fingerprint_image(to_bytes(img)).hashes["phash"]) <= 8


def test_cmyk_and_16bit(img):
    ref = fingerprint_image(to_bytes(img))
    q = fingerprint_image(to_bytes_any(img.convert("CMYK"), "JPEG", quality=90))
    assert _ham(q.hashes["phash"], ref.hashes["phash"]) <= 6
    gray = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    im16 = Image.fromarray(gray.astype(np.uint16))  # mode I;16
    q16 = fingerprint_image(to_bytes_any(im16, "PNG"))
    ref_l = fingerprint_image(to_bytes(img.convert("L")))
    assert _ham(q16.hashes["phash"], ref_l.hashes["phash"]) <= 4


def test_large_jpeg_decoded_at_reduced_scale():
    big = make_image(3, (400, 300)).resize((4000, 3000), Image.BILINEAR)
    data = to_bytes(big, "JPEG", quality=85)
    rgb, w, h = decode_image(data)
    assert (w, h) == (4000, 3000)
    assert max(rgb.size) <= 1024
    q = fingerprint_image(data)
    assert (q.width, q.height) == (4000, 3000)
    small = fingerprint_image(to_bytes(big.resize((800, 600))))
    assert _ham(q.hashes["phash"], small.hashes["phash"]) <= 4


def test_generator_is_seeded_and_transforms_run():
    a, b = make_image(5, (320, 240)), make_image(5, (320, 240))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(make_image(6, (320, 240))))
    from tests.fixtures.images import TRANSFORMS

    for name in TRANSFORMS:
        out = transform(a, name, seed=1)
        assert out.mode == "RGB" and min(out.size) >= 16, name
    with pytest.raises(ValueError):
        transform(a, "nope")


def to_bytes_any(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()

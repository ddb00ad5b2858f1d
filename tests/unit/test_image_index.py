"""ImageIndex: copies match their work, unrelated images do not, remove/replace, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import ImageOps

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.image import ImageIndex
from tests.fixtures.flag_images import RED, WHITE, make_tricolour
from tests.fixtures.flat_images import make_flat_wallpaper, make_plain_gradient
from tests.fixtures.images import (
    BENIGN_TRANSFORMS,
    HARD_TRANSFORMS,
    make_image,
    to_bytes,
    transform,
    transform_bytes,
)

pytestmark = pytest.mark.unit

SIZE = (400, 300)
N_WORKS = 10
WORK_SEEDS = list(range(1000, 1000 + N_WORKS))
UNRELATED_SEEDS = list(range(5000, 5010))


@pytest.fixture(scope="module")
def works():
    images = {f"work-{s}": make_image(s, SIZE) for s in WORK_SEEDS}
    fps = {wid: fingerprint_image(to_bytes(im)) for wid, im in images.items()}
    return images, fps


@pytest.fixture(scope="module")
def index(works):
    _, fps = works
    idx = ImageIndex()
    for wid, fp in fps.items():
        idx.add(wid, fp)
    return idx


def test_exact_copy_matches_first(index, works):
    _, fps = works
    for wid, fp in fps.items():
        hits = index.search(fp)
        assert hits and hits[0].work_id == wid
        assert hits[0].distance == 0 and hits[0].score == 1.0
        assert hits[0].signal in ("phash", "pdq")
        assert [h.work_id for h in hits] == [wid]


@pytest.mark.parametrize("name", BENIGN_TRANSFORMS)
def test_benign_copies_match(index, works, name):
    images, _ = works
    for i, (wid, im) in enumerate(list(images.items())[:4]):
        hits = index.search(fingerprint_image(transform_bytes(im, name, seed=i)[0]))
        assert [h.work_id for h in hits] == [wid], (name, wid, hits)
        assert "phash" in hits[0].evidence and 0.0 < hits[0].score <= 1.0


@pytest.mark.parametrize("name", HARD_TRANSFORMS)
def test_hard_copies_match(index, works, name):
    images, _ = works
    found = 0
    for i, (wid, im) in enumerate(list(images.items())[:5]):
        hits = index.search(fingerprint_image(transform_bytes(im, name, seed=i)[0]))
        assert all(h.work_id == wid for h in hits), (name, wid, hits)
        found += bool(hits)
    assert found >= 4, name


def test_crop_reports_region(index, works):
    """A centre crop (found by the crop ladder, or ORB) and an off-centre one (ORB: the
    ladder holds centred crops only) report where in the work they lie."""
    images, _ = works
    wid, im = next(iter(images.items()))
    hits = index.search(fingerprint_image(transform_bytes(im, "center_crop_60", seed=0)[0]))
    assert hits and hits[0].work_id == wid and hits[0].signal in ("dhash_crop", "orb")
    r = hits[0].evidence["region"]
    assert abs(r["x"] - 0.2) < 0.05 and abs(r["y"] - 0.2) < 0.05
    assert abs(r["w"] - 0.6) < 0.05 and abs(r["h"] - 0.6) < 0.05
    w, h = im.size
    off = im.crop((int(w * 0.05), int(h * 0.35), int(w * 0.65), int(h * 0.95)))
    hits = index.search(fingerprint_image(to_bytes(off)))
    assert hits and hits[0].work_id == wid and hits[0].signal == "orb"
    assert hits[0].distance >= 16  # inliers
    r = hits[0].evidence["region"]
    assert abs(r["x"] - 0.05) < 0.05 and abs(r["y"] - 0.35) < 0.05
    assert abs(r["w"] - 0.6) < 0.05 and abs(r["h"] - 0.6) < 0.05


def test_unrelated_images_never_match(index):
    for s in UNRELATED_SEEDS:
        fp = fingerprint_image(to_bytes(make_image(s, SIZE), "JPEG", quality=80))
        assert index.search(fp, second_tier="always") == [], s


def test_remove_and_replace(works):
    images, fps = works
    idx = ImageIndex()
    ids = list(fps)
    for wid in ids[:4]:
        idx.add(wid, fps[wid])
    assert len(idx) == 4
    idx.add(ids[0], fps[ids[0]])  # idempotent re-add
    assert len(idx) == 4
    assert [h.work_id for h in idx.search(fps[ids[0]])] == [ids[0]]
    idx.remove(ids[0])
    idx.remove("never-added")
    assert len(idx) == 3
    assert idx.search(fps[ids[0]], second_tier="always") == []
    # replace: work ids[1] now points at the image of ids[5]
    idx.add(ids[1], fps[ids[5]])
    assert len(idx) == 3
    assert idx.search(fps[ids[1]], second_tier="always") == []
    assert [h.work_id for h in idx.search(fps[ids[5]])] == [ids[1]]
    crop = fingerprint_image(transform_bytes(images[ids[5]], "center_crop_60", seed=0)[0])
    assert [h.work_id for h in idx.search(crop)] == [ids[1]]
    # many removals trigger a compaction; what remains must still be found
    for wid in ids[6:]:
        idx.add(wid, fps[wid])
    for wid in ids[6:9]:
        idx.remove(wid)
    assert len(idx) == 3 + 1
    for wid in (ids[2], ids[3], ids[9]):
        assert [h.work_id for h in idx.search(fps[wid])] == [wid]
    crop = fingerprint_image(transform_bytes(images[ids[9]], "crop_10", seed=0)[0])
    assert [h.work_id for h in idx.search(crop)] == [ids[9]]
    assert idx.search(fps[ids[7]], second_tier="always") == []


def test_accepts_dict_fingerprint_and_reports_memory(works):
    _, fps = works
    idx = ImageIndex()
    m0 = idx.memory_bytes()
    wid = next(iter(fps))
    idx.add(wid, fps[wid].model_dump())
    assert idx.memory_bytes() > m0
    assert idx.search(fps[wid].model_dump())[0].work_id == wid
    assert ImageIndex().search(fps[wid]) == []


def _without_thumb(fp):
    d = fp.model_dump()
    d["extra"].pop("thumb", None)
    return d


@pytest.mark.parametrize("name", ["jpeg_q20", "crop_10", "mirror"])
def test_fingerprints_without_thumbnail_still_match(works, name):
    """Works registered before the thumbnail signal existed (older registry records) are
    verified by the ORB/hash rules instead of the dense check, and still match."""
    images, fps = works
    idx = ImageIndex()
    for wid, fp in fps.items():
        idx.add(wid, _without_thumb(fp))
    wid = next(iter(fps))
    data, _ext = transform_bytes(images[wid], name, seed=5)
    hits = idx.search(fingerprint_image(data))
    assert hits and hits[0].work_id == wid
    assert "dense_agree" not in hits[0].evidence
    for seed in UNRELATED_SEEDS[:4]:
        assert idx.search(fingerprint_image(to_bytes(make_image(seed, SIZE)))) == []


def test_dense_evidence_reported(index, works):
    images, _ = works
    wid = f"work-{WORK_SEEDS[2]}"
    data, _ext = transform_bytes(images[wid], "caption_banner", seed=2)
    hit = index.search(fingerprint_image(data))[0]
    assert hit.work_id == wid
    assert hit.evidence["verified"] == "dense" or "orb_inliers" in hit.evidence
    assert hit.evidence["dense_agree_band"] >= 0.8
    assert hit.evidence["dense_band"] == "bottom"


def test_thread_safety_smoke(works):
    _, fps = works
    idx = ImageIndex()
    items = list(fps.items())
    errors: list[BaseException] = []

    def writer(part):
        try:
            for _ in range(3):
                for wid, fp in part:
                    idx.add(wid, fp)
                for wid, _fp in part[:1]:
                    idx.remove(wid)
                    idx.add(wid, fps[wid])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(4):
                for wid, fp in items:
                    for h in idx.search(fp):
                        assert h.work_id == wid
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [
        threading.Thread(target=writer, args=(items[:5],)),
        threading.Thread(target=writer, args=(items[5:],)),
        threading.Thread(target=reader),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(idx) == len(items)
    for wid, fp in items:
        assert idx.search(fp)[0].work_id == wid


def test_flat_wallpapers_match_their_copies_only():
    """Near-flat wallpapers: every benign copy matches its own work (faint detail checked),
    the same gradient with other shapes does not, and plain gradients (nothing identifiable)
    match nothing, not even their own copies."""
    idx = ImageIndex()
    for s in range(4):
        idx.add(f"wall-{s}", fingerprint_image(to_bytes(make_flat_wallpaper(s))))
        idx.add(f"plain-{s}", fingerprint_image(to_bytes(make_plain_gradient(s))))
    for s in range(4):
        for name in BENIGN_TRANSFORMS:
            data, _ext = transform_bytes(make_flat_wallpaper(s), name, seed=s)
            hits = idx.search(fingerprint_image(data))
            assert [h.work_id for h in hits] == [f"wall-{s}"], (s, name, hits)
        other = make_flat_wallpaper(s, shapes_seed=50 + s)
        assert idx.search(fingerprint_image(to_bytes(other))) == []
        data, _ext = transform_bytes(make_plain_gradient(s), "jpeg_q75", seed=s)
        assert idx.search(fingerprint_image(data)) == []


def _far(code: str) -> str:
    """The bitwise complement of a hex hash: as far as a hash can be."""
    return bytes(b ^ 0xFF for b in bytes.fromhex(code)).hex()


def test_dhash_proposes_when_phash_and_pdq_flip(works):
    """Symmetric patterns put pHash/PDQ coefficients at their median, where re-encoding flips
    them (pattern-x-hatch-1 of openclipart: pHash 26 bits after JPEG q75, dHash 3). Simulated
    here by flipping every pHash/PDQ bit of a copy: dHash alone proposes the work, the dense
    check confirms it. A stranger carrying the work's dHash is proposed too, and refused."""
    images, fps = works
    idx = ImageIndex()
    for wid, fp in fps.items():
        idx.add(wid, fp)
    wid = next(iter(fps))
    q = fingerprint_image(transform_bytes(images[wid], "jpeg_q75", seed=1)[0]).model_dump()
    q["hashes"]["phash"], q["hashes"]["pdq"] = _far(q["hashes"]["phash"]), _far(q["hashes"]["pdq"])
    v = q["extra"]["variants"]
    for key in ("phash_mirror", "phash_trim", "pdq_trim"):
        if key in v:
            v[key] = _far(v[key])
    v["pdq_dihedral"] = ",".join(_far(h) for h in v["pdq_dihedral"].split(","))
    hits = idx.search(q, second_tier="never")
    assert [h.work_id for h in hits] == [wid]
    assert hits[0].signal == "dhash" and hits[0].evidence["verified"] == "dense"
    assert hits[0].distance == hits[0].evidence["dhash"] <= 10
    stranger = fingerprint_image(to_bytes(make_image(UNRELATED_SEEDS[0], SIZE))).model_dump()
    stranger["hashes"]["dhash"] = fps[wid].hashes["dhash"]
    assert idx.search(stranger, second_tier="never") == []


def test_add_hash_codes_bulk(works):
    """The scale benchmark's bulk path: hash-only works are found by their codes, verified
    by the hash rules (no thumbnail), and ids stay unique."""
    _, fps = works
    fp = next(iter(fps.values()))
    idx = ImageIndex()
    idx.add("real", fp)
    codes = {k: bytes.fromhex(fp.hashes[k]) for k in ("phash", "dhash", "pdq")}
    rows = {k: np.frombuffer(v, np.uint8)[None].repeat(2, 0) for k, v in codes.items()}
    rows["phash"][1] ^= 0xFF  # the second work is far from everything
    rows["pdq"][1] ^= 0xFF
    rows["dhash"][1] ^= 0xFF
    idx.add_hash_codes(["bulk-0", "bulk-1"], rows["phash"], rows["dhash"], rows["pdq"])
    assert len(idx) == 3
    found = {h.work_id for h in idx.search(fp, second_tier="never")}
    assert found == {"real", "bulk-0"}
    with pytest.raises(ValueError):
        idx.add_hash_codes(["bulk-0"], rows["phash"][:1], rows["dhash"][:1], rows["pdq"][:1])
    with pytest.raises(ValueError):
        idx.add_hash_codes(["x"], rows["phash"], rows["dhash"][:1], rows["pdq"][:1])


def test_a_work_with_its_own_margin_is_judged_untrimmed_when_the_trim_fails():
    """A flag on a white band: the query's border trim removes the band, which belongs to the
    work. When the trimmed variant is the nearest by its hashes and the dense check refuses
    it (the trimmed query no longer lines up), the untrimmed query is judged as well."""
    flag = make_tricolour(((252, 221, 9), RED, (252, 221, 9)), size=(480, 300), horizontal=True)
    work = ImageOps.expand(flag, border=(0, 40, 0, 40), fill=WHITE)
    wfp = fingerprint_image(to_bytes(work))
    idx = ImageIndex()
    idx.add("flag", wfp)
    q = fingerprint_image(to_bytes(transform(work, "brightness_contrast", seed=1)))
    # The trimmed variant made nearest (as when a margin's trim leaves stripes whose hashes
    # fall on the work's): its codes are the work's own, the untrimmed ones 4 bits off.
    flip4 = f"{int(wfp.hashes['phash'], 16) ^ 0xF:016x}"
    variants = {
        **q.extra["variants"],
        "phash_trim": wfp.hashes["phash"],
        "pdq_trim": wfp.hashes["pdq"],
        "dhash_trim": wfp.hashes["dhash"],
        "trim_box": [0.0, 0.1, 1.0, 0.8],
    }
    q = q.model_copy(
        update={
            "hashes": {**q.hashes, "phash": flip4, "pdq": wfp.hashes["pdq"]},
            "extra": {**q.extra, "variants": variants},
        }
    )
    hits = idx.search(q, second_tier="never")
    assert [h.work_id for h in hits] == ["flag"], hits
    assert hits[0].evidence["variant"] == "original", hits[0].evidence

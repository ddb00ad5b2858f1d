"""Storage tables and snapshots: add, remove, compact, snapshot round trip (identical verdicts),
version and corruption refusal, memory accounting."""

from __future__ import annotations

import io
import struct
from dataclasses import replace

import numpy as np
import pytest

from contentmatch_fingerprint.signals.audio import fingerprint_audio
from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.image import ImageIndex
from contentmatch_match.image.tables import CodeTable, TableSpec
from contentmatch_match.index.audio import AudioIndex
from contentmatch_match.index.blobs import BlobStore
from contentmatch_match.index.snapshot import (
    MAGIC,
    SnapshotError,
    prefixed,
    read_snapshot,
    sub,
    write_snapshot,
)
from contentmatch_shared.events import ObjectRef, WorkFingerprinted, WorkMetadata, utcnow
from tests.fixtures.audio import DEFAULT_SR, excerpt, make_track, write_wav
from tests.fixtures.images import make_image, to_bytes, transform

pytestmark = pytest.mark.unit

VAR = TableSpec("var", 4, extras={"kp": (2, np.float32)})


def _round_trip(state, sink_dir=None):
    buf = io.BytesIO()
    write_snapshot(buf, *state)
    buf.seek(0)
    return read_snapshot(buf, lambda _n: BlobStore.sink(sink_dir))


def _var_table() -> CodeTable:
    t = CodeTable(VAR)
    rng = np.random.default_rng(1)
    for slot, n in enumerate([3, 0, 5, 1, 2]):
        if n:
            t.add(slot, rng.integers(0, 256, (n, 4), np.uint8), kp=rng.random((n, 2), np.float32))
    return t


def test_variable_table_keeps_each_slots_rows_through_compaction() -> None:
    t = _var_table()
    assert t.ntotal == 11
    assert t.spans.get(0) == (0, 3) and t.spans.get(1) is None and t.spans.get(2) == (3, 5)
    codes, kp = t.all_codes(), t.extras["kp"].view
    live = np.array([0, 2, 4])
    c = t.compacted(live)
    assert c.ntotal == 3 + 5 + 2
    for new, old in enumerate(live.tolist()):
        f0, n0 = t.spans.get(old)  # type: ignore[misc]
        f1, n1 = c.spans.get(new)  # type: ignore[misc]
        assert n0 == n1
        assert np.array_equal(c.all_codes()[f1 : f1 + n1], codes[f0 : f0 + n0])
        assert np.array_equal(c.extras["kp"].view[f1 : f1 + n1], kp[f0 : f0 + n0])
        assert set(c.slots(np.arange(f1, f1 + n1)).tolist()) == {new}


def test_table_state_round_trip_is_exact_and_searchable() -> None:
    t = _var_table()
    meta, sections = _round_trip(t.state())
    r = CodeTable.from_state(VAR, meta, sections)
    assert np.array_equal(r.all_codes(), t.all_codes())
    assert np.array_equal(r.extras["kp"].view, t.extras["kp"].view)
    assert [r.spans.get(s) for s in range(6)] == [t.spans.get(s) for s in range(6)]
    q = t.all_codes()[4:6]
    assert np.array_equal(r.fx.search(q, 3)[1], t.fx.search(q, 3)[1])
    with pytest.raises(ValueError, match="not of"):
        CodeTable.from_state(TableSpec("other", 4), meta, sections)


def test_blob_store_records_survive_compaction_and_snapshot(tmp_path) -> None:
    b = BlobStore(str(tmp_path))
    for rec in (b"a" * 10, None, b"bc", b"", b"xyz" * 1000):
        b.append(rec)
    first = b.append_shared(3, b"shared")
    assert [b.get(s) for s in range(5)] == [b"a" * 10, None, b"bc", None, b"xyz" * 1000]
    assert {b.get(s) for s in range(first, first + 3)} == {b"shared"}
    assert b.memory_bytes() < 2000 and b.used_bytes == 10 + 2 + 3000 + 6
    c = b.compacted(np.array([0, 2, 6]))
    assert [c.get(s) for s in range(3)] == [b"a" * 10, b"bc", b"shared"]
    meta, sections = _round_trip(prefixed("blobs", c.state()), str(tmp_path))
    r = BlobStore.from_state(*sub("blobs", meta, sections), str(tmp_path))
    assert [r.get(s) for s in range(3)] == [b"a" * 10, b"bc", b"shared"]
    assert r.append(b"new") == 3 and r.get(3) == b"new"


def _snapshot_bytes() -> bytes:
    buf = io.BytesIO()
    write_snapshot(buf, {"kind": "t", "version": 1}, {"a": np.arange(1000, dtype=np.int64)})
    return buf.getvalue()


def test_unknown_format_version_is_refused_clearly() -> None:
    raw = bytearray(_snapshot_bytes())
    raw[len(MAGIC) : len(MAGIC) + 4] = struct.pack("<I", 99)
    with pytest.raises(SnapshotError, match="format version 99 is not readable"):
        read_snapshot(io.BytesIO(bytes(raw)))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda r: b"NOTANIDX" + r[8:], "bad magic"),
        (lambda r: r[: len(r) // 2], "truncated"),
        (lambda r: r[:-200] + bytes([r[-200] ^ 1]) + r[-199:], "checksum"),
    ],
)
def test_damaged_snapshots_are_refused(mangle, message) -> None:
    with pytest.raises(SnapshotError, match=message):
        read_snapshot(io.BytesIO(mangle(_snapshot_bytes())))


@pytest.fixture(scope="module")
def image_works():
    imgs = {f"w{i}": make_image(8300 + i, (320, 240)) for i in range(10)}
    return imgs, {w: fingerprint_image(to_bytes(img)) for w, img in imgs.items()}


def _verdicts(idx: ImageIndex, queries) -> list:
    return [
        [(h.work_id, h.score, h.signal, h.distance) for h in idx.search(q, second_tier=tier)]
        for q in queries
        for tier in ("auto", "always")
    ]


def test_restored_image_index_gives_identical_verdicts(image_works, tmp_path) -> None:
    imgs, fps = image_works
    idx = ImageIndex(directory=str(tmp_path))
    for w, fp in fps.items():
        idx.add(w, fp)
    idx.remove("w3")  # a dead slot travels too
    idx.add("w5", fps["w5"])  # replaced: two slots, one alive
    queries = [
        fingerprint_image(to_bytes(transform(imgs[w], t, 1)))
        for w, t in (("w1", "jpeg_q20"), ("w2", "center_crop_60"), ("w3", "mirror"))
    ]
    queries.append(fingerprint_image(to_bytes(make_image(8399, (320, 240)))))
    before = _verdicts(idx, queries)
    assert before[0] and before[0][0][0] == "w1"
    assert not before[4]  # removed
    restored = idx.fresh()
    restored.restore_state(*_round_trip(idx.state(), str(tmp_path)))
    assert len(restored) == len(idx) == 9
    assert 0 < restored.memory_bytes() <= idx.memory_bytes()  # no spare capacity
    assert _verdicts(restored, queries) == before
    restored.add("w3", fps["w3"])  # the restored index keeps growing
    assert restored.search(fps["w3"])[0].work_id == "w3"


def test_image_snapshot_of_another_layout_is_refused(image_works) -> None:
    _, fps = image_works
    idx = ImageIndex()
    idx.add("w0", fps["w0"])
    state = _round_trip(idx.state())
    with pytest.raises(SnapshotError, match="other codes or signals"):
        ImageIndex(use_orb=False).restore_state(*state)
    meta, sections = state
    with pytest.raises(SnapshotError, match="version 0 is not readable"):
        ImageIndex().restore_state({**meta, "version": 0}, sections)


def test_memory_accounting_counts_resident_columns_not_thumbnails(image_works) -> None:
    _, fps = image_works
    idx = ImageIndex()
    empty = idx.memory_bytes()
    for w, fp in fps.items():
        idx.add(w, fp)
    grown = idx.memory_bytes() - empty
    assert grown > 0 and idx.disk_bytes() > 10 * 4096  # thumbnails: on disk
    n = 5000
    rng = np.random.default_rng(3)
    before = idx.memory_bytes()
    idx.add_hash_codes(
        [f"s{j}" for j in range(n)],
        *(rng.integers(0, 256, (n, k), np.uint8) for k in (8, 8, 32)),
    )
    per_work = (idx.memory_bytes() - before) / n
    assert 56 * 2 < per_work < 1000  # two copies of 56 code bytes, ids, a few columns


def _event(work_id: str, fp, media: str) -> WorkFingerprinted:
    return WorkFingerprinted(
        work_id=work_id,
        tenant="label",
        media_type=media,  # type: ignore[arg-type]
        object=ObjectRef(bucket="b", key=f"works/{work_id}", size=3),
        metadata=WorkMetadata(title=f"T {work_id}", policy="block", identifiers={"isrc": "X"}),
        fingerprint=fp,
        fingerprinted_at=utcnow(),
    )


def test_catalog_snapshot_restores_entries_indexes_and_offsets(image_works, tmp_path) -> None:
    _, fps = image_works
    tracks = {s: make_track(8310 + s, 20.0) for s in range(2)}
    afps = {}
    for s, x in tracks.items():
        write_wav(tmp_path / f"t{s}.wav", x)
        afps[s] = fingerprint_audio(str(tmp_path / f"t{s}.wav"))
    write_wav(tmp_path / "q.wav", excerpt(tracks[1], DEFAULT_SR, 4.0, 10.0))
    audio_q = fingerprint_audio(str(tmp_path / "q.wav"))
    cat = WorkCatalog()
    for w in ("w0", "w1", "w2"):
        cat.apply(w, _event(w, fps[w], "image"))
    for s, fp in afps.items():
        cat.apply(f"a{s}", _event(f"a{s}", fp, "audio"))
    cat.apply("w2", None)
    buf = io.BytesIO()
    written = cat.snapshot(buf, {"0": 17, "1": 4})
    assert written == len(buf.getvalue())
    buf.seek(0)
    other = WorkCatalog()
    assert other.restore(buf) == {"0": 17, "1": 4}
    assert len(other) == len(cat) == 4
    assert other.get("a1") == cat.get("a1") and other.get("w2") is None
    assert other.search("image", fps["w1"]) == cat.search("image", fps["w1"])
    found = other.search("audio", audio_q)
    assert found == cat.search("audio", audio_q) and found[0].work_id == "a1"
    other.apply("a0", None)  # and follows the registry on
    assert other.get("a0") is None and len(other.indexes["audio"]) == 1
    template = cat.get("w1")
    assert template is not None
    other.add_bulk_entries(template, ["bulk-1", 'odd "id"'])
    assert other.get('odd "id"') == replace(template, work_id='odd "id"')
    assert other.memory_bytes() > 5 * 100


def test_catalog_refuses_a_foreign_snapshot_and_stays_as_it_was(image_works) -> None:
    _, fps = image_works
    cat = WorkCatalog()
    cat.apply("w0", _event("w0", fps["w0"], "image"))
    buf = io.BytesIO()
    write_snapshot(buf, {"kind": "catalog", "version": 99}, {})
    buf.seek(0)
    with pytest.raises(SnapshotError, match="catalog snapshot version 99"):
        cat.restore(buf)
    assert len(cat) == 1 and cat.search("image", fps["w0"])[0].work_id == "w0"


def test_audio_index_of_another_shape_is_refused() -> None:
    from contentmatch_match.index.object_state import object_state, restore_object

    meta, sections = object_state(AudioIndex())
    with pytest.raises(SnapshotError, match="other attributes"):
        restore_object(AudioIndex, {**meta, "fields": ["_gone"]}, sections)
    with pytest.raises(SnapshotError, match="expected"):
        restore_object(ImageIndex, meta, sections)


def _orb_works(n: int, per: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.integers(0, 256, (per, 32), np.uint8), rng.random((per, 2), np.float32) * 300)
        for _ in range(n)
    ]


def test_orb_table_shortlists_the_work_whose_descriptors_the_query_shares() -> None:
    from contentmatch_match.image.config import OrbParams
    from contentmatch_match.image.orb_table import OrbTable

    rng = np.random.default_rng(4)
    params = OrbParams()
    t = OrbTable(params)
    works = _orb_works(40, 60, rng)
    for slot, (d, kp) in enumerate(works):
        t.add(slot, d, kp) if slot != 7 else t.add(slot, None, None)
    alive = np.ones(40, bool)
    # a copy of work 3: half its descriptors, one bit flipped in each
    q = works[3][0][:30].copy()
    q[:, 0] ^= 1
    assert t.shortlist(q, alive, 1, 5, 2, 10**6)[0] == 3
    assert t.shortlist(q, alive, 0, 5, 2, 10**6).tolist() in ([], [3])  # bit 0 is a key bit
    alive[3] = False
    assert 3 not in t.shortlist(q, alive, 1, 5, 2, 10**6).tolist()
    assert t.shortlist(q, np.ones(40, bool), 1, 5, 2, 0).tolist() == []  # no budget, no probe
    assert t.features(7) is None and np.array_equal(t.features(3)[0], works[3][0])  # type: ignore[index]
    meta, sections = _round_trip(prefixed("orb", t.state()))
    r = OrbTable.from_state(params, *sub("orb", meta, sections))
    assert (
        r.shortlist(q, np.ones(40, bool), 1, 5, 2, 10**6).tolist()
        == t.shortlist(q, np.ones(40, bool), 1, 5, 2, 10**6).tolist()
    )
    c = t.compacted(np.array([1, 3, 5]), params)
    assert c.shortlist(q, np.ones(3, bool), 1, 5, 2, 10**6)[0] == 1
    assert c.memory_bytes() < t.memory_bytes()


def test_orb_table_folds_runs_into_its_base_without_changing_answers(monkeypatch) -> None:
    from contentmatch_match.image import orb_table
    from contentmatch_match.image.config import OrbParams

    monkeypatch.setattr(orb_table, "_FOLD_MIN", 500)
    rng = np.random.default_rng(5)
    params = OrbParams(key_bits=tuple(range(12)))
    t = orb_table.OrbTable(params)
    works = _orb_works(30, 50, rng)
    for slot, (d, kp) in enumerate(works):
        t.add(slot, d, kp)
    assert t._base_off is not None and t.ntotal == 1500  # folded at least once
    q = works[17][0][:25]
    assert t.shortlist(q, np.ones(30, bool), 1, 3, 2, 10**6)[0] == 17

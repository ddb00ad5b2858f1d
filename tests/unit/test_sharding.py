"""Shards: a stable split of works, a merge independent of arrival order, snapshots that
restore the same catalog and refuse to load when damaged or cut for another split."""

from __future__ import annotations

import io
import itertools
import os
from datetime import timedelta

import pytest

from contentmatch_fingerprint.signals.image import fingerprint_image
from contentmatch_match.catalog import WorkCatalog
from contentmatch_match.merger import merge_partials
from contentmatch_match.sharding import shard_of, upload_group
from contentmatch_match.snapshots import (
    Snapshot,
    SnapshotUnusable,
    capture,
    load,
    offsets_problem,
)
from contentmatch_shared.events import (
    Match,
    ObjectRef,
    UploadMetadata,
    UploadPartialMatched,
    WorkFingerprinted,
    WorkMetadata,
    utcnow,
)
from contentmatch_shared.settings import Settings
from tests.fixtures.images import make_image, to_bytes, transform_bytes

pytestmark = pytest.mark.unit

TOPIC = "works.registry"


def test_shard_of_is_stable_and_spreads_works_evenly() -> None:
    # Fixed values: a change of hash would move every work to another shard on upgrade.
    assert [shard_of(f"wrk_{i}", 4) for i in range(8)] == [
        shard_of(f"wrk_{i}", 4) for i in range(8)
    ]
    assert shard_of("wrk_0123456789abcdef", 1) == 0
    assert shard_of("wrk_0123456789abcdef", 2) == _reference_shard("wrk_0123456789abcdef", 2)
    counts = [0, 0, 0]
    for i in range(3000):
        counts[shard_of(f"wrk_{i:08x}", 3)] += 1
    assert min(counts) > 900, counts


def _reference_shard(work_id: str, shards: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(work_id.encode(), digest_size=8).digest(), "big") % shards


def test_groups_keep_the_historic_name_with_one_shard() -> None:
    assert upload_group(0, 1) == "match"
    assert upload_group(1, 3) == "match-shard-1-of-3"


def test_served_shards_are_checked() -> None:
    assert Settings(match_shards=3).served_shards() == [0, 1, 2]
    assert Settings(match_shards=3, match_serve_shards=[2, 0, 2]).served_shards() == [0, 2]
    assert Settings(match_shards=3, match_serve_shards=[]).served_shards() == []
    with pytest.raises(ValueError, match="CM_MATCH_SERVE_SHARDS"):
        Settings(match_shards=2, match_serve_shards=[2])


def _match(work_id: str, score: float) -> Match:
    return Match(
        work_id=work_id,
        kind="work",
        title=work_id,
        tenant="label",
        score=score,
        policy="block",
        media_type="image",
        signal="pdq",
    )


def _partial(shard: int, shards: int, matches: list[Match], size: int) -> UploadPartialMatched:
    now = utcnow()
    return UploadPartialMatched(
        upload_id="upl_1",
        tenant="tube",
        media_type="image",
        object=ObjectRef(bucket="b", key="uploads/tube/upl_1"),
        metadata=UploadMetadata(),
        matches=matches,
        submitted_at=now - timedelta(seconds=5),
        matched_at=now + timedelta(milliseconds=shard),
        registry_size=size,
        shard=shard,
        shards=shards,
    )


def test_the_merge_is_the_same_whatever_order_the_shards_answer_in() -> None:
    partials = [
        _partial(0, 3, [_match("wrk_b", 0.9), _match("wrk_d", 0.5)], 10),
        _partial(1, 3, [], 11),
        _partial(2, 3, [_match("wrk_a", 0.9), _match("wrk_c", 0.95)], 12),
    ]
    verdicts = {
        merge_partials(list(order)).model_dump_json() for order in itertools.permutations(partials)
    }
    assert len(verdicts) == 1
    verdict = merge_partials(partials)
    # Best first; equal scores by work id, as a single index orders them.
    assert [m.work_id for m in verdict.matches] == ["wrk_c", "wrk_a", "wrk_b", "wrk_d"]
    assert verdict.registry_size == 33
    assert verdict.matched_at == max(p.matched_at for p in partials)
    assert not hasattr(verdict, "shard")


def test_a_work_found_twice_while_resharding_counts_once_at_its_best() -> None:
    verdict = merge_partials(
        [_partial(0, 2, [_match("wrk_a", 0.6)], 1), _partial(1, 2, [_match("wrk_a", 0.8)], 1)]
    )
    assert [(m.work_id, m.score) for m in verdict.matches] == [("wrk_a", 0.8)]


def test_background_hits_of_a_shard_stand_only_where_no_shard_found_anything_else() -> None:
    background = _match("wrk_bg", 0.5).model_copy(update={"signal": "background"})
    found = merge_partials(
        [_partial(0, 2, [_match("wrk_a", 0.9)], 1), _partial(1, 2, [background], 1)]
    )
    assert [m.work_id for m in found.matches] == ["wrk_a"]
    alone = merge_partials([_partial(0, 2, [], 1), _partial(1, 2, [background], 1)])
    assert [m.work_id for m in alone.matches] == ["wrk_bg"]


def test_an_incomplete_set_of_answers_is_not_merged() -> None:
    with pytest.raises(ValueError, match="one each of 3"):
        merge_partials([_partial(0, 3, [], 1), _partial(2, 3, [], 1)])
    with pytest.raises(ValueError, match="one each"):
        merge_partials([_partial(0, 2, [], 1), _partial(0, 2, [], 1)])


# -- snapshots -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> list[WorkFingerprinted]:
    events = []
    for i, seed in enumerate((8400, 8401, 8402, 8403)):
        events.append(
            WorkFingerprinted(
                work_id=f"wrk_snap{i}",
                tenant="label",
                media_type="image",
                object=ObjectRef(bucket="b", key=f"works/wrk_snap{i}"),
                metadata=WorkMetadata(title=f"work {i}", policy="block"),
                fingerprint=fingerprint_image(to_bytes(make_image(seed, (320, 240)))),
                fingerprinted_at=utcnow(),
            )
        )
    return events


def _catalog(events: list[WorkFingerprinted]) -> WorkCatalog:
    catalog = WorkCatalog()
    for event in events:
        catalog.apply(event.work_id, event)
    return catalog


def _snapshot_bytes(catalog: WorkCatalog, about: Snapshot, tmp_path) -> bytes:
    snap = capture(catalog, about, str(tmp_path))
    try:
        with open(snap.path, "rb") as f:
            return f.read()
    finally:
        os.unlink(snap.path)


SHARD_1 = Snapshot(shard=1, shards=2, topic=TOPIC, partitions={0: 7, 1: 3})
ENDS = {0: 9, 1: 3}


def test_a_restored_catalog_answers_as_the_one_it_was_taken_from(registry, tmp_path) -> None:
    source = _catalog(registry)
    source.apply("wrk_snap3", None)  # a tombstone before the snapshot
    data = _snapshot_bytes(source, SHARD_1, tmp_path)
    restored = WorkCatalog()
    about = load(io.BytesIO(data), restored, SHARD_1, ENDS)
    assert about == SHARD_1
    assert sorted(restored.work_ids()) == ["wrk_snap0", "wrk_snap1", "wrk_snap2"]
    assert restored.get("wrk_snap1") == source.get("wrk_snap1")
    query = fingerprint_image(transform_bytes(make_image(8401, (320, 240)), "jpeg_q75")[0])
    assert [m.model_dump() for m in restored.search("image", query)] == [
        m.model_dump() for m in source.search("image", query)
    ]
    assert restored.search("image", query)[0].work_id == "wrk_snap1"


def test_a_damaged_or_foreign_snapshot_is_refused_with_its_reason(registry, tmp_path) -> None:
    data = _snapshot_bytes(_catalog(registry[:2]), SHARD_1, tmp_path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    cases = {
        "checksum": (bytes(flipped), SHARD_1, ENDS),
        "truncated": (data[: len(data) // 2], SHARD_1, ENDS),
        "magic": (b"PK\x03\x04" + data[4:], SHARD_1, ENDS),
        "shard is 1": (data, Snapshot(0, 2, TOPIC, {}), ENDS),
        "shards is 2": (data, Snapshot(1, 3, TOPIC, {}), ENDS),
        "topic": (data, Snapshot(1, 2, "other.registry", {}), ENDS),
        "past the registry's end": (data, SHARD_1, {0: 5, 1: 3}),
        "partitions": (data, SHARD_1, {0: 9}),
    }
    for reason, (blob, want, ends) in cases.items():
        catalog = _catalog(registry[2:3])
        with pytest.raises(SnapshotUnusable, match=reason):
            load(io.BytesIO(blob), catalog, want, ends)
        assert catalog.work_ids() == ["wrk_snap2"], reason  # left as it was


def test_offsets_past_the_registry_or_other_partitions_are_refused() -> None:
    assert offsets_problem({0: 5, 1: 2}, {0: 5, 1: 9}) is None
    assert "past the registry's end" in (offsets_problem({0: 6}, {0: 5}) or "")
    assert "partitions" in (offsets_problem({0: 1}, {0: 5, 1: 5}) or "")

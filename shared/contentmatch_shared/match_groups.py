"""The match service's consumer groups, named once (match, ingest's backlog reading, k8s)."""

from __future__ import annotations

MERGER_GROUP = "match-merger"  # on match.partials


def upload_group(shard: int, shards: int) -> str:
    """The consumer group of one shard on ``uploads.fingerprinted``: replicas serving the same
    shard share its partitions; each shard sees every upload. One shard keeps the historic name;
    with more, the count is in the name, so two splits can run side by side while resharding."""
    return "match" if shards == 1 else f"match-shard-{shard}-of-{shards}"


def shard_groups(shards: int) -> list[str]:
    return [upload_group(k, shards) for k in range(shards)]

from __future__ import annotations

import uuid

import pytest

from contentmatch_shared.kafka.admin import ensure_topics
from contentmatch_shared.settings import Settings


@pytest.fixture
async def isolated(settings: Settings) -> Settings:
    """Settings with a topic prefix and buckets of this test's own, topics created."""
    tag = uuid.uuid4().hex[:8]
    mine = settings.model_copy(
        update={
            "topic_prefix": f"it{tag}.",
            "bucket_media": f"it-{tag}-media",
            "bucket_state": f"it-{tag}-state",
            "bucket_reports": f"it-{tag}-reports",
            "consumer_retry_backoff_s": 0.05,
            "consumer_commit_interval_s": 0.2,
        }
    )
    await ensure_topics(mine)
    return mine

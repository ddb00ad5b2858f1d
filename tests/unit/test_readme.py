"""The README documents every setting and every topic (it is what newcomers read first)."""

from __future__ import annotations

from pathlib import Path

from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import ALL_TOPICS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f"CM_{n.upper()}" for n in Settings.model_fields if f"CM_{n.upper()}" not in README]
    assert not missing, missing


def test_every_topic_is_documented() -> None:
    missing = [t.name for t in ALL_TOPICS if f"`{t.name}`" not in README]
    assert not missing, missing

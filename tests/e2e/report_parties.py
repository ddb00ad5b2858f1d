"""Tenants of their own for the report tests, and a way to get real reports issued.

The report tests create their own tenants (suffix per module) so that their reports never show up
in the listings other end-to-end modules count.
"""

from __future__ import annotations

from dataclasses import dataclass

from contentmatch_shared.client import ContentMatchClient, Endpoints
from tests.fixtures.images import make_image, to_bytes, transform_bytes


@dataclass
class ReportParties:
    operator: ContentMatchClient
    label: ContentMatchClient  # rightsholder
    label_enforcement: ContentMatchClient  # enforcement team acting for label
    rival: ContentMatchClient
    rival_enforcement: ContentMatchClient
    ai_lab: ContentMatchClient  # registers AI outputs
    tube: ContentMatchClient  # platform
    vidshare: ContentMatchClient  # another platform
    names: dict[str, str]

    def close(self) -> None:
        for name in self.names:
            getattr(self, name).close()


def make_parties(operator: ContentMatchClient, endpoints: Endpoints, tag: str) -> ReportParties:
    roles = {
        "label": ("rightsholder", f"label-{tag}"),
        "label_enforcement": ("enforcement", f"label-{tag}"),
        "rival": ("rightsholder", f"rival-{tag}"),
        "rival_enforcement": ("enforcement", f"rival-{tag}"),
        "ai_lab": ("rightsholder", f"ai-lab-{tag}"),
        "tube": ("platform", f"tube-{tag}"),
        "vidshare": ("platform", f"vidshare-{tag}"),
    }
    clients = {
        name: ContentMatchClient(operator.create_key(role, tenant), endpoints)
        for name, (role, tenant) in roles.items()
    }
    return ReportParties(operator=operator, names={n: t for n, (_, t) in roles.items()}, **clients)


def register_image(owner: ContentMatchClient, seed: int, metadata: dict[str, object]) -> str:
    work_id = owner.register_work(to_bytes(make_image(seed), "PNG"), f"w{seed}.png", metadata)
    work = owner.wait_work(work_id)
    assert work["status"] == "indexed", work
    return work_id


def upload_copy(
    platform: ContentMatchClient, seed: int, transform: str, **meta: str
) -> dict[str, object]:
    """A transformed copy of image ``seed`` uploaded by ``platform``; waits for its reports."""
    data, ext = transform_bytes(make_image(seed), transform, seed=seed)
    upload_id = platform.submit_upload(data, f"copy{seed}.{ext}", dict(meta) or None)
    upload = platform.wait_upload(upload_id)
    assert upload["status"] == "matched", upload
    return upload

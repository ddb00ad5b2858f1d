"""The memory limits the Kubernetes manifests give each container, for figures beside peak RSS."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def k8s_memory_limits(names: Iterable[str], tree: Path = ROOT) -> dict[str, int]:
    """Memory limit in MiB of each named container in ``deploy/k8s/base/<name>.yaml``."""
    out: dict[str, int] = {}
    for name in names:
        path = tree / "deploy" / "k8s" / "base" / f"{name}.yaml"
        if not path.exists():
            continue
        m = re.search(r"limits:\s*\{[^}]*memory:\s*(\d+)(Mi|Gi)", path.read_text())
        if m:
            out[name] = int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)
    return out

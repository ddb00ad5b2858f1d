"""The wire format of ORB local features inside ``ImageFingerprint.extra["orb"]``.

Written by the fingerprint service, read by the match index: the reading side lives here so
both services agree on one definition.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def decode_orb(orb: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(descriptors n x 32 uint8, points n x 2 float32 in ORB-copy pixels, width, height).

    Points travel as uint16 fractions of the ORB copy's size, which keeps the payload small.
    """
    n = int(orb["n"])
    desc = np.frombuffer(base64.b64decode(orb["desc"]), dtype=np.uint8).reshape(n, 32)
    kp = np.frombuffer(base64.b64decode(orb["kp"]), dtype="<u2").reshape(n, 2).astype(np.float32)
    w, h = int(orb["w"]), int(orb["h"])
    kp[:, 0] *= w / 65535.0
    kp[:, 1] *= h / 65535.0
    return desc, kp, w, h

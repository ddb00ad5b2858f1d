"""The id grammar: what a work, upload, report id and a tenant name may look like.

Ids reach us in URLs, in events a platform publishes and in object keys, and they become parts
of S3 keys; one grammar here is checked at every entrance (HTTP paths, event validation, the
fingerprint and status consumers), so a ``/`` or ``..`` never makes it into a key.
"""

from __future__ import annotations

import re
from typing import Literal

IdKind = Literal["upl", "wrk", "rep"]

# ``<kind>_<32 lowercase hex>``: what new_id and the derived (idempotent) ids produce.
_ID = re.compile(r"(upl|wrk|rep)_[0-9a-f]{32}")
# Tenants name API keys, S3 prefixes and Kafka principals: letters, digits, ``_ . -``.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_TENANT = re.compile(TENANT_PATTERN[1:-1])
TENANT_MAX = 200


class InvalidId(ValueError):
    """An id or tenant that does not follow the grammar."""


def is_id(value: object, kind: IdKind) -> bool:
    return isinstance(value, str) and (m := _ID.fullmatch(value)) is not None and m[1] == kind


def check_id(value: object, kind: IdKind) -> str:
    if not is_id(value, kind):
        raise InvalidId(f"{kind} id must be {kind}_ and 32 lowercase hex digits, got {value!r:.80}")
    return str(value)


def is_tenant(value: object) -> bool:
    return isinstance(value, str) and len(value) <= TENANT_MAX and bool(_TENANT.fullmatch(value))


def check_tenant(value: object) -> str:
    if not is_tenant(value):
        raise InvalidId(
            f"tenant must be 1-{TENANT_MAX} letters, digits, '_', '.' or '-' starting with a"
            f" letter or digit, got {value!r:.80}"
        )
    return str(value)

"""Errors that cross module boundaries, each with a stable snake_case code."""

from __future__ import annotations


class MediaError(Exception):
    """Media that cannot be fingerprinted: undecodable, too short, absurd dimensions.

    Not transient: retrying the same bytes gives the same result, so the item is marked failed.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self):  # keeps code/message across a process-pool boundary
        return (type(self), (self.code, self.message))

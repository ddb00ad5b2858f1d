"""The image wing of the match service: signals, tables, proposers, judges, one pipeline.

See ``docs/image-pipeline.md`` for the stages, what each decides and where each threshold
lives (``config``).
"""

from contentmatch_match.image.index import ImageIndex

__all__ = ["ImageIndex"]

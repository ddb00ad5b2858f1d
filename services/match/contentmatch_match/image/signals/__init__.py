"""Image signals as plug-ins: each module holds a signal's decode, its derived codes and the
table its codes are stored in. ``TABLES`` is the registry the index builds its storage from."""

from contentmatch_match.image.signals.crops import CROP_LADDER, WHOLE
from contentmatch_match.image.signals.hashes import DHASH, PDQ, PHASH
from contentmatch_match.image.signals.vertical import DHASH_V

TABLES = (PHASH, PDQ, DHASH, DHASH_V, CROP_LADDER, WHOLE)  # ORB: ``image.orb_table``

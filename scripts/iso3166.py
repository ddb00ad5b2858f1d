"""Regenerate shared/contentmatch_shared/data/iso3166-1-alpha2.txt from Debian's iso-codes.

Run after ``apt-get install iso-codes``: ``python scripts/iso3166.py``. Nothing reads
iso-codes at run time; the list is data in the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = Path("/usr/share/iso-codes/json/iso_3166-1.json")
TARGET = (
    Path(__file__).resolve().parents[1] / "shared/contentmatch_shared/data/iso3166-1-alpha2.txt"
)


def main() -> None:
    codes = sorted(entry["alpha_2"] for entry in json.loads(SOURCE.read_text())["3166-1"])
    header = TARGET.read_text().splitlines()[:3]
    TARGET.write_text("\n".join([*header, *codes]) + "\n")


if __name__ == "__main__":
    main()

"""Work identifiers and territories: the formats a rightsholder's metadata may carry.

Known identifier schemes are checked (format and check digit) and stored in their compact form
(upper case, separators removed). Other schemes are accepted within bounds: a lower-case name and
a short printable value. Territories are ISO 3166-1 alpha-2 codes, from the list in ``data/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

MAX_IDENTIFIERS = 20
MAX_IDENTIFIER_CHARS = 200
MAX_TERRITORIES = 300
_SCHEME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SEPARATORS = re.compile(r"[\s\-.]")
_TERRITORIES_FILE = Path(__file__).with_name("data") / "iso3166-1-alpha2.txt"


class InvalidMetadata(ValueError):
    """A metadata field that is not acceptable: ``code`` names the field's problem."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _digits_check(digits: str, weights: Callable[[int], int], modulus: int) -> int:
    return sum(int(d) * weights(i) for i, d in enumerate(digits)) % modulus


def gtin_valid(code: str) -> bool:
    """GTIN-8/12/13/14 (EAN, UPC, ISBN-13): weights 3,1,3,... from the right, mod 10."""
    if not code.isdigit() or len(code) not in (8, 12, 13, 14):
        return False
    body, check = code[:-1], int(code[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def isbn_valid(code: str) -> bool:
    if len(code) == 13:
        return code[:3] in ("978", "979") and gtin_valid(code)
    if len(code) != 10 or not code[:9].isdigit() or not (code[9].isdigit() or code[9] == "X"):
        return False
    values = [int(c) for c in code[:9]] + [10 if code[9] == "X" else int(code[9])]
    return sum(v * (10 - i) for i, v in enumerate(values)) % 11 == 0


def isni_valid(code: str) -> bool:
    """ISNI (ISO 27729; ORCID ids too): 15 digits and an ISO 7064 MOD 11-2 check character."""
    if len(code) != 16 or not code[:15].isdigit() or not (code[15].isdigit() or code[15] == "X"):
        return False
    total = 0
    for d in code[:15]:
        total = (total + int(d)) * 2
    result = (12 - total % 11) % 11
    return code[15] == ("X" if result == 10 else str(result))


def iswc_valid(code: str) -> bool:
    """ISWC (ISO 15707): ``T``, nine digits and a check digit."""
    if len(code) != 11 or code[0] != "T" or not code[1:].isdigit():
        return False
    total = 1 + sum(int(d) * (i + 1) for i, d in enumerate(code[1:10]))
    return (10 - total % 10) % 10 == int(code[10])


def isrc_valid(code: str) -> bool:
    """ISRC (ISO 3901): country (2 letters), registrant (3 alphanumerics), year, designation."""
    return re.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}[0-9]{7}", code) is not None


KNOWN_SCHEMES: dict[str, Callable[[str], bool]] = {
    "isrc": isrc_valid,
    "iswc": iswc_valid,
    "isni": isni_valid,
    "isbn": isbn_valid,
    "upc": lambda c: len(c) == 12 and gtin_valid(c),
    "ean": lambda c: len(c) in (8, 13) and gtin_valid(c),
    "gtin": gtin_valid,
}


def normalize_identifiers(identifiers: dict[str, str]) -> dict[str, str]:
    """Checked and normalized identifiers, or :class:`InvalidMetadata`."""
    if len(identifiers) > MAX_IDENTIFIERS:
        raise InvalidMetadata(
            "too_many_identifiers", f"at most {MAX_IDENTIFIERS} identifiers per work"
        )
    out: dict[str, str] = {}
    for raw_scheme, value in identifiers.items():
        scheme = raw_scheme.strip().lower()
        if not _SCHEME.match(scheme):
            raise InvalidMetadata(
                "invalid_identifier",
                f"identifiers: {raw_scheme[:40]!r} is not a scheme name (a-z, 0-9, _; "
                "at most 32 characters)",
            )
        if not value or len(value) > MAX_IDENTIFIER_CHARS or not value.isprintable():
            raise InvalidMetadata(
                "invalid_identifier",
                f"identifiers.{scheme}: 1-{MAX_IDENTIFIER_CHARS} printable characters",
            )
        check = KNOWN_SCHEMES.get(scheme)
        if check is not None:
            compact = _SEPARATORS.sub("", value).upper()
            if not check(compact):
                raise InvalidMetadata(
                    "invalid_identifier",
                    f"identifiers.{scheme}: {value[:40]!r} is not a valid {scheme.upper()}",
                )
            value = compact
        if scheme in out:
            raise InvalidMetadata("invalid_identifier", f"identifiers.{scheme}: given twice")
        out[scheme] = value
    return out


@cache
def iso_territories() -> frozenset[str]:
    lines = _TERRITORIES_FILE.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def normalize_territory(code: str, field: str = "territories") -> str:
    upper = code.strip().upper()
    if upper not in iso_territories():
        raise InvalidMetadata(
            "invalid_territory", f"{field}: {code[:10]!r} is not an ISO 3166-1 alpha-2 code"
        )
    return upper


def normalize_territories(codes: list[str]) -> list[str]:
    if len(codes) > MAX_TERRITORIES:
        raise InvalidMetadata("invalid_territory", f"at most {MAX_TERRITORIES} territories")
    return list(dict.fromkeys(normalize_territory(c) for c in codes))

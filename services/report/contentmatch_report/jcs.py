"""RFC 8785, the JSON Canonicalization Scheme (JCS): one byte string per JSON value.

- objects: members sorted by their names compared as UTF-16 code units (not code points: a name
  with a character above U+FFFF sorts by its surrogates), no whitespace;
- strings: UTF-8; only ``"``, ``\\`` and control characters escaped (``\\b \\t \\n \\f \\r`` short,
  the rest as ``\\u00xx``, lowercase hex);
- numbers: IEEE 754 doubles written as ECMAScript's ``Number.prototype.toString`` writes them
  (shortest round-trip digits; exponent form below 1e-6 and from 1e21); NaN and Infinity refused.

:func:`loads_strict` is the parser a verifier needs: it refuses duplicate member names (JSON
allows them, and two parsers may keep different ones) and the non-JSON constants NaN/Infinity.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_SHORT_ESCAPES["\r"] = "\\r"
# Integers beyond 2**53 are not exact doubles: they are written as the double they become.
_EXACT_INT = 2**53


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, Infinity, a lone surrogate, a non-JSON type)."""


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 bytes of a JSON value (dicts, lists, str, int, float, bool, None)."""
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError(f"a string holds a lone surrogate: {exc}") from exc


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(str(value) if abs(value) <= _EXACT_INT else number(float(value)))
    elif isinstance(value, float):
        out.append(number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, name in enumerate(sorted(value, key=_utf16_key)):
            if not isinstance(name, str):
                raise CanonicalizationError(f"object member name {name!r} is not a string")
            out.append("," if i else "")
            out.append(_string(name))
            out.append(":")
            _write(value[name], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _write(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")


def _utf16_key(name: object) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the code-unit sequences do.
    return name.encode("utf-16-be", "surrogatepass") if isinstance(name, str) else b""


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a double (RFC 8785 section 3.2.2.3)."""
    if math.isnan(value) or math.isinf(value):
        raise CanonicalizationError(f"{value} is not a JSON number")
    if value == 0:
        return "0"  # also -0
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript requires.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent  # value = 0.DIGITS * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    suffix = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + suffix


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise CanonicalizationError(f"duplicate member name {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise CanonicalizationError(f"{name} is not JSON")


def loads_strict(data: str | bytes) -> Any:
    """Parse JSON, refusing duplicate member names and NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)

"""RFC 8785 canonical JSON: the RFC's own test vectors, float edge cases, strict parsing."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from contentmatch_report.jcs import CanonicalizationError, canonicalize, loads_strict, number

# RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript spelling.
RFC_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


@pytest.mark.parametrize(("bits", "expected"), RFC_NUMBERS)
def test_rfc_number_vectors(bits: str, expected: str) -> None:
    assert number(_double(bits)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-1.5, "-1.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-6, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (1e-7, "1e-7"),
        (123e18, "123000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),  # smallest normal
        (0.953125, "0.953125"),
        (100.0, "100"),
        (-0.0, "0"),
    ],
)
def test_float_edge_cases(value: float, expected: str) -> None:
    assert number(value) == expected


def test_every_spelling_reads_back_as_the_same_double() -> None:
    rng = random.Random(8785)
    for _ in range(5000):
        value = _double(f"{rng.getrandbits(64):016x}")
        if math.isfinite(value):
            assert float(number(value)) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_have_no_form(value: float) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize({"x": value})


def test_integers_beyond_double_precision_are_written_as_their_double() -> None:
    assert canonicalize(2**53) == b"9007199254740992"
    assert canonicalize(2**53 + 1) == b"9007199254740992"
    assert canonicalize(10**21) == b"1e+21"
    assert canonicalize([True, False, None, 0, -7]) == b"[true,false,null,0,-7]"


def test_rfc_section_3_2_3_example() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(source)) == expected.encode()


def test_member_names_sort_by_utf16_code_units() -> None:
    """The RFC's sorting example: an emoji (surrogates D83D DE00) sorts before U+FB33."""
    names = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    out = canonicalize({n: i for i, n in enumerate(names)}).decode()
    order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert [json.loads("{" + p + "}").popitem()[0] for p in out[1:-1].split(",")] == order


def test_strings_escape_only_what_json_requires() -> None:
    text = 'a"b\\c\b\f\n\r\t\x00\x1f\x7f é ☀ \U0001f600 </'
    out = canonicalize(text)
    assert out == ('"a\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u001f\x7f é ☀ \U0001f600 </"').encode()
    assert json.loads(out) == text
    with pytest.raises(CanonicalizationError, match="surrogate"):
        canonicalize("\ud800")


def test_strict_parsing_refuses_duplicate_members_and_constants() -> None:
    assert loads_strict('{"a": {"b": 1}, "c": [1, {"b": 2}]}') == {
        "a": {"b": 1},
        "c": [1, {"b": 2}],
    }
    with pytest.raises(CanonicalizationError, match="duplicate member name 'action'"):
        loads_strict('{"decision": {"action": "block", "action": "track"}}')
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(CanonicalizationError):
            loads_strict('{"x": ' + constant + "}")


NODE_VERIFIER = Path(__file__).parents[1] / "ops" / "verify_report.mjs"


def _node(script: str, stdin: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is needed: the other-language verifier is part of the test suite"
    head = f"import * as v from {json.dumps(NODE_VERIFIER.as_uri())};"
    head += "import {readFileSync} from 'node:fs'; const input = readFileSync(0, 'utf8');"
    return subprocess.run(
        [node, "--input-type=module", "-e", head + script],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_node_verifier_canonicalizes_byte_for_byte_like_this_one() -> None:
    rng = random.Random(20)
    doubles = [_double(f"{rng.getrandbits(64):016x}") for _ in range(2000)]
    values: list[object] = [d for d in doubles if math.isfinite(d)]
    values += [_double(bits) for bits, _ in RFC_NUMBERS]
    values += [0.1 + 0.2, 1e-7, 1e21, 123e18, 2**53, -7, 0, True, None, "a\u0000\u007f\n é"]
    values += [{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": [{}, []]}]
    values += [json.loads('{"b": [1.50, {"z": null, "a": "x"}], "a": -0.0, "c": 4.5e-9}')]
    done = _node(
        "console.log(JSON.stringify(JSON.parse(input).map(v.canonicalize)))", json.dumps(values)
    )
    assert done.returncode == 0, done.stderr
    node_forms = json.loads(done.stdout)
    ours = [canonicalize(value).decode() for value in values]
    assert [i for i, (a, b) in enumerate(zip(node_forms, ours, strict=True)) if a != b] == []


def test_the_node_verifier_refuses_duplicate_names_anywhere() -> None:
    script = (
        "for (const t of JSON.parse(input)) { try { v.refuseDuplicateNames(t); console.log('ok') }"
        " catch (e) { console.log(e.message) } }"
    )
    texts = [
        '{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}',
        '{"a": 1, "a": 1}',
        '{"x": [1, {"k": "\\\\"}, {"k": 2, "k": 3}]}',
        '{"s": "\\"a\\" , \\"a\\"", "t": { } , "u": [ ] }',
    ]
    done = _node(script, json.dumps(texts))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ok",
        'duplicate member name "a"',
        'duplicate member name "k"',
        "ok",
    ]


def _readme_python_verifier() -> str:
    readme = (Path(__file__).parents[2] / "services" / "report" / "README.md").read_text()
    by_hand = readme[readme.index("### By hand") :]
    return by_hand[by_hand.index("```python\n") + 10 : by_hand.index("```\n", 10)]


def test_the_readmes_by_hand_verifier_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe in services/report/README.md, run as written, on a report and key listing."""
    from contentmatch_report.signing import ReportSigner

    signer = ReportSigner.from_config("", str(tmp_path / "k.key"))
    report = signer.sign({
        "report_id": "rep_1", "title": "Ünïcode ☀ \U0001f600 \\x01",
        "n": [1, -0.0, 1e-7, 3.0, 1e21],
        "z": {"\ufb33": 0.30000000000000004, "\U0001f600": 123e18, "\r": None, "b": True},
    })  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps(report, indent=1))
    (tmp_path / "keys.json").write_text(json.dumps({"keys": signer.public_keys()}))
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(_readme_python_verifier(), scope)  # raises InvalidSignature if the recipe is wrong
    rng = random.Random(3)
    for bits in [b for b, _ in RFC_NUMBERS] + [f"{rng.getrandbits(64):016x}" for _ in range(3000)]:
        value = _double(bits)
        if math.isfinite(value):
            assert scope["number"](value) == number(value), bits  # type: ignore[operator]
    (tmp_path / "report.json").write_text(json.dumps(report).replace('"n":', '"n":[],"n":', 1))
    with pytest.raises(ValueError, match="duplicate"):
        exec(_readme_python_verifier(), {})

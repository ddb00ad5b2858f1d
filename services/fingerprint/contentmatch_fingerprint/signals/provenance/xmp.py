"""XMP packets in any file, read with a safe XML parser (defusedxml: no DTD, no entities).

What is read (each a property of an ``rdf:Description``, as an attribute or an element, a plain
value, an ``rdf:resource`` or the items of an ``rdf:Bag``/``Seq``/``Alt``):

- IPTC Extension ``Iptc4xmpExt:DigitalSourceType`` (an IPTC NewsCodes URI, see
  :data:`DIGITAL_SOURCE_TYPES`), ``AISystemUsed``, ``AISystemVersionUsed``, ``AIPromptInformation``;
- PLUS ``plus:DataMining`` (text-and-data-mining permission, ``DMI-PROHIBITED...`` reserves it)
  and ``plus:OtherConstraints``;
- ``dcterms:provenance`` and ``xmp:CreatorTool``.

Packets are found by scanning the bytes for ``<x:xmpmeta`` ... ``</x:xmpmeta>``: XMP is stored as
contiguous text in JPEG APP1, uncompressed PNG iTXt, WebP, TIFF, GIF, HEIF/AVIF, MP3 and MP4
(compressed PNG iTXt comes from :mod:`png_chunks`; JPEG's ExtendedXMP, a packet split over
several APP1 segments, is reassembled by :func:`jpeg_extended_packets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_PACKET_BYTES = 1 << 20
MAX_PACKETS = 4
MAX_SCAN_ATTEMPTS = 16  # openings without a closing tag looked at, at most
MAX_VALUES = 16  # per property
MAX_VALUE_CHARS = 500

_OPENINGS = (b"<x:xmpmeta", b"<x:xapmeta")
_CLOSINGS = {b"<x:xmpmeta": b"</x:xmpmeta>", b"<x:xapmeta": b"</x:xapmeta>"}
_OPENING_PREFIX = b"<x:x"
_EXTENDED = b"http://ns.adobe.com/xmp/extension/\x00"
MAX_EXTENDED_GUIDS = 2

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
DCTERMS = "http://purl.org/dc/terms/"
XMP = "http://ns.adobe.com/xap/1.0/"

_PROPERTIES = {
    f"{{{IPTC_EXT}}}DigitalSourceType": "digital_source_types",
    f"{{{IPTC_EXT}}}AISystemUsed": "ai_systems",
    f"{{{IPTC_EXT}}}AISystemVersionUsed": "ai_system_versions",
    f"{{{IPTC_EXT}}}AIPromptInformation": "ai_prompts",
    f"{{{PLUS}}}DataMining": "data_mining",
    f"{{{PLUS}}}OtherConstraints": "other_constraints",
    f"{{{DCTERMS}}}provenance": "provenance",
    f"{{{XMP}}}CreatorTool": "creator_tools",
}
_CONTAINERS = {f"{{{RDF}}}Bag", f"{{{RDF}}}Seq", f"{{{RDF}}}Alt"}
_LI = f"{{{RDF}}}li"
_RESOURCE = f"{{{RDF}}}resource"

# IPTC NewsCodes "Digital Source Type" (cv.iptc.org/newscodes/digitalsourcetype/), current and
# retired, with the label a reviewer reads.
DIGITAL_SOURCE_TYPES = {
    "digitalCapture": "original digital capture of a real-life scene",
    "computationalCapture": "computational capture of a real-life scene",
    "negativeFilm": "digitised from a negative on film",
    "positiveFilm": "digitised from a positive on film",
    "print": "digitised from a print on non-transparent medium",
    "humanEdits": "original media with human edits",
    "minorHumanEdits": "original media with minor human edits",
    "compositeCapture": "composite of captured elements",
    "algorithmicallyEnhanced": "algorithmically enhanced media",
    "dataDrivenMedia": "data-driven media",
    "digitalCreation": "digital creation by a human",
    "digitalArt": "digital art (retired term)",
    "trainedAlgorithmicMedia": "created by a trained algorithmic model (generative AI)",
    "compositeWithTrainedAlgorithmicMedia": "composite including generative-AI elements",
    "algorithmicMedia": "created purely by an algorithm, no trained model",
    "compositeSynthetic": "composite including synthetic elements",
    "composite": "composite of elements",
    "screenCapture": "screen capture",
    "virtualRecording": "virtual recording",
    "softwareImage": "software image (retired term)",
}
AI_DIGITAL_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
)
DST_PREFIXES = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/",
    "https://cv.iptc.org/newscodes/digitalsourcetype/",
)
# PLUS "Data Mining" (ns.useplus.org/ldf/vocab/DMI-...): the values that reserve mining.
DATA_MINING_RESERVED_PREFIX = "DMI-PROHIBITED"


class XmpError(ValueError):
    """A packet that is not well-formed, or that a safe parser refuses (DTD, entities)."""


@dataclass(frozen=True)
class XmpFacts:
    """The properties read from one XMP packet (values as written, clipped)."""

    digital_source_types: tuple[str, ...] = ()
    ai_systems: tuple[str, ...] = ()
    ai_system_versions: tuple[str, ...] = ()
    ai_prompts: tuple[str, ...] = ()
    data_mining: tuple[str, ...] = ()
    other_constraints: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    creator_tools: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.digital_source_types,
                self.ai_systems,
                self.data_mining,
                self.provenance,
                self.creator_tools,
            )
        )


def digital_source_type_name(value: str) -> str:
    """``trainedAlgorithmicMedia`` from the IPTC URI (or a bare name, as some writers put it)."""
    value = value.strip()
    for prefix in DST_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value.rsplit("/", 1)[-1]


def data_mining_name(value: str) -> str:
    """``DMI-PROHIBITED-AIMLTRAINING`` from the PLUS vocabulary URI (or the bare name)."""
    return value.strip().rsplit("/", 1)[-1]


def data_mining_reserved(value: str) -> bool:
    return data_mining_name(value).upper().startswith(DATA_MINING_RESERVED_PREFIX)


def find_packets(data: bytes) -> list[bytes]:
    """The XMP packets stored as text in ``data`` (at most ``MAX_PACKETS``, each bounded)."""
    packets: list[bytes] = []
    pos = 0
    attempts = 0
    while len(packets) < MAX_PACKETS and attempts < MAX_SCAN_ATTEMPTS:
        start = data.find(_OPENING_PREFIX, pos)  # one pass finds both spellings
        if start < 0:
            break
        opening = data[start : start + len(_OPENINGS[0])]
        if opening not in _CLOSINGS:
            pos = start + len(_OPENING_PREFIX)
            continue
        attempts += 1
        closing = _CLOSINGS[opening]
        end = data.find(closing, start, start + MAX_PACKET_BYTES)
        if end < 0:
            pos = start + len(opening)
            continue
        nested = data.find(_OPENING_PREFIX, start + len(opening), end)
        if nested >= 0:  # this opening is a fragment's (ExtendedXMP's first part, say)
            pos = nested
            continue
        end += len(closing)
        packet = data[start:end]
        if _EXTENDED in packet:  # spans ExtendedXMP segments: read once reassembled
            pos = start + len(opening)
            continue
        if packet not in packets:
            packets.append(packet)
        pos = end
    return packets


def jpeg_extended_packets(data: bytes) -> list[bytes]:
    """JPEG ExtendedXMP: APP1 segments of ``_EXTENDED``, a 32-character GUID, the packet's full
    length and this part's offset, reassembled per GUID (whole packets only, each bounded)."""
    if data[:2] != b"\xff\xd8":
        return []
    parts: dict[bytes, tuple[bytearray, set[tuple[int, int]]]] = {}
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: no more metadata segments
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break
        body = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        if marker != 0xE1 or not body.startswith(_EXTENDED) or len(body) < len(_EXTENDED) + 40:
            continue
        head = len(_EXTENDED)
        guid = body[head : head + 32]
        full = int.from_bytes(body[head + 32 : head + 36], "big")
        offset = int.from_bytes(body[head + 36 : head + 40], "big")
        chunk = body[head + 40 :]
        if not 0 < full <= MAX_PACKET_BYTES or offset + len(chunk) > full:
            continue
        if guid not in parts:
            if len(parts) >= MAX_EXTENDED_GUIDS:
                continue
            parts[guid] = (bytearray(full), set())
        buffer, spans = parts[guid]
        if len(buffer) == full:
            buffer[offset : offset + len(chunk)] = chunk
            spans.add((offset, len(chunk)))
    return [
        bytes(buffer)
        for buffer, spans in parts.values()
        if sum(n for _, n in spans) >= len(buffer)  # every byte arrived
    ]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _values(elem) -> list[str]:
    """An element property's values: its list items, its resource or its text."""
    items = [li for child in elem if child.tag in _CONTAINERS for li in child if li.tag == _LI]
    if items:
        out = []
        for li in items:
            text = li.get(_RESOURCE) or "".join(li.itertext())
            if text.strip():
                out.append(text)
        return out
    if (resource := elem.get(_RESOURCE)) is not None:
        return [resource]
    text = "".join(elem.itertext())
    return [text] if text.strip() else []


def read_packet(packet: bytes) -> XmpFacts:
    """The properties of one packet. Raises :class:`XmpError` when it cannot be parsed safely."""
    if len(packet) > MAX_PACKET_BYTES:
        raise XmpError(f"XMP packet of {len(packet)} bytes exceeds {MAX_PACKET_BYTES}")
    try:
        root = SafeET.fromstring(packet, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise XmpError(f"XMP packet refused: {type(exc).__name__}: {str(exc)[:200]}") from None
    found: dict[str, list[str]] = {name: [] for name in _PROPERTIES.values()}

    def add(name: str, values: list[str]) -> None:
        bucket = found[name]
        for value in values:
            clipped = _clip(value)
            if len(bucket) < MAX_VALUES and clipped and clipped not in bucket:
                bucket.append(clipped)

    for elem in root.iter():
        for key, value in elem.attrib.items():
            if (name := _PROPERTIES.get(key)) is not None:
                add(name, [value])
        if isinstance(elem.tag, str) and (name := _PROPERTIES.get(elem.tag)) is not None:
            add(name, _values(elem))
    return XmpFacts(**{name: tuple(values) for name, values in found.items()})


def read_xmp(data: bytes, packets: list[bytes] | None = None) -> tuple[list[XmpFacts], list[str]]:
    """Facts of every XMP packet in ``data`` (plus ``packets`` found elsewhere, such as a PNG's
    compressed iTXt) and the problems of the packets that could not be read."""
    facts: list[XmpFacts] = []
    problems: list[str] = []
    all_packets = find_packets(data)
    for elsewhere in packets or []:
        for packet in find_packets(elsewhere):  # the same element as the scan finds
            if packet not in all_packets and len(all_packets) < MAX_PACKETS:
                all_packets.append(packet)
    for packet in all_packets:
        try:
            read = read_packet(packet)
        except XmpError as exc:
            problems.append(str(exc))
            continue
        if not read.empty:
            facts.append(read)
    return facts, problems

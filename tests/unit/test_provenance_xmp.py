"""XMP: IPTC digital source type (every NewsCode), AI system, PLUS data mining, dcterms
provenance, in each container; hostile XML refused alone."""

from __future__ import annotations

import struct

import pytest

from contentmatch_fingerprint.signals.provenance import png_chunks, xmp
from tests.fixtures.provenance_media import (
    encode,
    jpeg_with_extended_xmp,
    jpeg_with_xmp,
    picture,
    png_with_xmp,
    xmp_packet,
)


@pytest.mark.parametrize("dst", sorted(xmp.DIGITAL_SOURCE_TYPES))
@pytest.mark.parametrize("as_attributes", [False, True], ids=["element", "attribute"])
def test_every_digital_source_type_is_read(dst: str, as_attributes: bool) -> None:
    data = jpeg_with_xmp(xmp_packet(digital_source_type=dst, as_attributes=as_attributes))
    facts, problems = xmp.read_xmp(data)
    assert problems == []
    assert len(facts) == 1
    (value,) = facts[0].digital_source_types
    assert value == xmp.DST_PREFIXES[0] + dst
    assert xmp.digital_source_type_name(value) == dst


def test_ai_system_tdm_and_provenance() -> None:
    packet = xmp_packet(
        digital_source_type="trainedAlgorithmicMedia",
        ai_system="Firefly Image",
        ai_system_version="3",
        data_mining="DMI-PROHIBITED-AIMLTRAINING",
        provenance="Generated from a text prompt, then retouched",
        creator_tool="Adobe Photoshop 26.0",
    )
    (facts,), _ = xmp.read_xmp(jpeg_with_xmp(packet))
    assert facts.ai_systems == ("Firefly Image",)
    assert facts.ai_system_versions == ("3",)
    assert facts.data_mining == ("http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING",)
    assert xmp.data_mining_reserved(facts.data_mining[0])
    assert not xmp.data_mining_reserved("http://ns.useplus.org/ldf/vocab/DMI-ALLOWED")
    assert not xmp.data_mining_reserved("DMI-UNSPECIFIED")
    assert facts.provenance == ("Generated from a text prompt, then retouched",)
    assert facts.creator_tools == ("Adobe Photoshop 26.0",)


@pytest.mark.parametrize(
    "container", ["jpeg", "png", "png-compressed", "png-after", "webp", "tiff", "gif", "mp3"]
)
def test_xmp_found_in_each_container(container: str) -> None:
    packet = xmp_packet(digital_source_type="compositeWithTrainedAlgorithmicMedia")
    extra: list[bytes] = []
    if container == "jpeg":
        data = jpeg_with_xmp(packet)
    elif container.startswith("png"):
        data = png_with_xmp(
            packet, compressed="compressed" in container, after="after" in container
        )
        extra = png_chunks.walk(data).xmp_packets
    elif container == "webp":
        data = encode(picture(), "WEBP", xmp=packet)
    elif container == "tiff":
        data = encode(picture(), "TIFF", tiffinfo={700: packet})
    elif container == "gif":
        gif = encode(picture(), "GIF")
        magic_trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
        data = gif[:-1] + b"\x21\xff\x0bXMP DataXMP" + packet + magic_trailer + gif[-1:]
    else:  # an ID3v2.3 PRIV frame, owner "XMP"
        body = b"XMP\x00" + packet
        frame = b"PRIV" + struct.pack(">I", len(body)) + b"\x00\x00" + body
        size = len(frame)
        syncsafe = bytes((size >> s) & 0x7F for s in (21, 14, 7, 0))
        data = b"ID3\x03\x00\x00" + syncsafe + frame + b"\xff\xfb\x90\x00" * 100
    facts, problems = xmp.read_xmp(data, extra)
    assert problems == []
    assert [f.digital_source_types for f in facts] == [
        (xmp.DST_PREFIXES[0] + "compositeWithTrainedAlgorithmicMedia",)
    ]


def test_plain_files_have_no_xmp() -> None:
    assert xmp.read_xmp(encode(picture(), "JPEG")) == ([], [])
    assert xmp.read_xmp(b"") == ([], [])


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&c;</x:xmpmeta>"""
EXTERNAL_ENTITY = b"""<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>"""


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entities", "external"])
def test_hostile_xml_is_refused_alone(hostile: bytes) -> None:
    good = xmp_packet(digital_source_type="trainedAlgorithmicMedia")
    facts, problems = xmp.read_xmp(b"junk" + hostile + b"junk" + good)
    assert len(problems) == 1 and "refused" in problems[0]
    assert len(facts) == 1 and facts[0].digital_source_types


def test_scan_is_bounded() -> None:
    # Openings without a closing tag: a bounded number of bounded searches, then nothing.
    data = b"<x:xmpmeta " * 200_000
    assert xmp.find_packets(data) == []
    many = b"-".join(xmp_packet(provenance=f"note {i}") for i in range(10))
    assert len(xmp.find_packets(many)) == xmp.MAX_PACKETS
    values = "".join(f"<rdf:li>v{i}</rdf:li>" for i in range(100))
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:dcterms="http://purl.org/dc/terms/"><dcterms:provenance><rdf:Bag>'
        f"{values}</rdf:Bag></dcterms:provenance></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    assert len(xmp.read_packet(packet).provenance) == xmp.MAX_VALUES


def test_jpeg_extended_xmp_is_reassembled() -> None:
    main = xmp_packet(creator_tool="Adobe Photoshop 26.0")
    extended = xmp_packet(digital_source_type="trainedAlgorithmicMedia", provenance="x" * 600)
    data = jpeg_with_extended_xmp(main, extended)
    in_order = jpeg_with_extended_xmp(main, extended, in_order=True)
    assert xmp.jpeg_extended_packets(in_order) == [extended]
    assert xmp.read_xmp(in_order, [extended])[1] == []
    (packet,) = xmp.jpeg_extended_packets(data)
    assert packet == extended
    facts, problems = xmp.read_xmp(data, [packet])
    assert problems == []
    assert [f.digital_source_types for f in facts if f.digital_source_types] == [
        (xmp.DST_PREFIXES[0] + "trainedAlgorithmicMedia",)
    ]
    # A part missing: nothing is made up from the rest.
    cut = data.replace(b"\xff\xe1", b"\xff\xe2", 1)
    assert xmp.jpeg_extended_packets(cut) == []
    assert xmp.jpeg_extended_packets(encode(picture(), "JPEG")) == []
    assert xmp.jpeg_extended_packets(b"\xff\xd8\xff\xe1\xff\xff") == []

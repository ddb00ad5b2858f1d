"""PNG text chunks (before and after the image data) and EXIF: what AI front-ends write."""

from __future__ import annotations

import json
import zlib

import pytest

from contentmatch_fingerprint.signals.provenance import exif, png_chunks
from contentmatch_fingerprint.signals.provenance.generator_text import (
    a1111_settings,
    generator_claims,
)
from contentmatch_fingerprint.signals.provenance.generators import ai_generator
from tests.fixtures.provenance_media import (
    A1111_PARAMETERS,
    comfy_texts,
    encode,
    jpeg_with_exif,
    picture,
    png_chunk,
    png_with_chunks,
    text_chunk,
)


def _texts(data: bytes) -> dict[str, str]:
    return {c.keyword: c.text for c in png_chunks.walk(data).texts}


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
@pytest.mark.parametrize("after", [False, True], ids=["before-idat", "after-idat"])
def test_a1111_parameters_in_any_text_chunk(kind: str, after: bool) -> None:
    chunk = text_chunk("parameters", A1111_PARAMETERS, kind)
    data = png_with_chunks(after=[chunk]) if after else png_with_chunks(before=[chunk])
    walked = png_chunks.walk(data)
    (found,) = walked.texts
    assert found.after_image_data is after and found.text == A1111_PARAMETERS
    (claim,) = generator_claims(_texts(data))
    assert (claim.ai_system, claim.tool) == ("Stable Diffusion", "AUTOMATIC1111")
    assert claim.models == ("v1-5-pruned-emaonly",)
    assert claim.details["seed"] == "1234567"
    assert claim.details["prompt"] == "a lighthouse at dusk, oil painting"


def test_a1111_settings_line() -> None:
    settings = a1111_settings(A1111_PARAMETERS)
    assert settings is not None
    assert settings["Lora hashes"] == "a: 1, b: 2"
    assert settings["Version"] == "v1.10.1"
    assert a1111_settings("a photo of a cat") is None


@pytest.mark.parametrize("after", [False, True], ids=["before-idat", "after-idat"])
def test_comfyui_prompt_and_workflow(after: bool) -> None:
    chunks = comfy_texts()
    data = png_with_chunks(after=chunks) if after else png_with_chunks(before=chunks)
    claims = {c.keyword: c for c in generator_claims(_texts(data))}
    assert claims["prompt"].tool == claims["workflow"].tool == "ComfyUI"
    assert claims["prompt"].models == ("sd_xl_base_1.0.safetensors",)
    assert claims["prompt"].ai_system == "Stable Diffusion"
    assert claims["workflow"].models == ("flux1-dev.safetensors",)
    assert claims["workflow"].ai_system == "FLUX"


def test_other_front_ends_and_plain_text() -> None:
    texts = {
        "invokeai_metadata": json.dumps(
            {"model": {"name": "juggernautXL"}, "positive_prompt": "x"}
        ),
        "Software": "NovelAI",
        "Source": "Stable Diffusion XL C1E1DE52",
    }
    tools = {c.keyword: (c.tool, c.ai_system) for c in generator_claims(texts)}
    assert tools["invokeai_metadata"] == ("InvokeAI", "Stable Diffusion")
    assert tools["Software"] == ("NovelAI", "Stable Diffusion")
    (dream,) = generator_claims({"Dream": '"a cat" -s 50 -S 1234 -W 512 -H 512'})
    assert dream.tool == "InvokeAI"
    assert generator_claims({"Dream": "a dream of a house"}) == []
    swarm = {"sui_image_params": {"model": "OfficialStableDiffusion/sd_xl_base_1.0", "prompt": "p"}}
    (claim,) = generator_claims({"parameters": json.dumps(swarm)})
    assert claim.tool == "SwarmUI"
    # Keywords without a front-end's signature claim nothing.
    plain = {
        "parameters": "exposure +1",
        "prompt": "not json",
        "workflow": json.dumps({"a": 1}),
        "Software": "GIMP 2.10",
        "Comment": "Stable Diffusion",  # not a field generators write their name in
        "Title": "x",
    }
    assert generator_claims(plain) == []


def test_generator_names() -> None:
    assert ai_generator("DALL·E 3") == "DALL-E"
    assert ai_generator("Adobe Firefly Image 3") == "Adobe Firefly"
    assert ai_generator("Midjourney v6") == "Midjourney"
    assert ai_generator("Adobe Photoshop 26.0 (Windows)") is None
    assert ai_generator("Canon EOS R5 Firmware 1.8") is None
    assert ai_generator(None) is None


def test_png_walk_is_bounded() -> None:
    bomb = zlib.compress(b"A" * (50 << 20), 9)  # ~50 KB that inflate to 50 MB
    data = png_with_chunks(after=[png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)])
    (found,) = png_chunks.walk(data).texts
    assert found.truncated and len(found.text) == png_chunks.MAX_TEXT_BYTES
    many = [text_chunk(f"k{i}", "x") for i in range(png_chunks.MAX_TEXT_CHUNKS + 10)]
    assert len(png_chunks.walk(png_with_chunks(before=many)).texts) == png_chunks.MAX_TEXT_CHUNKS


def test_png_walk_survives_lies() -> None:
    good = png_with_chunks(after=[text_chunk("parameters", A1111_PARAMETERS)])
    iend = good.rindex(b"IEND") - 4
    lying = good[:iend] + b"\xff\xff\xff\x00tEXt" + b"x" * 10
    walked = png_chunks.walk(lying)
    assert [t.keyword for t in walked.texts] == ["parameters"]
    assert walked.problems and "past the end" in walked.problems[0]
    broken = png_with_chunks(
        before=[png_chunk(b"zTXt", b"k\x00\x00not zlib"), png_chunk(b"tEXt", b"")]
    )
    assert len(png_chunks.walk(broken).problems) == 2
    assert png_chunks.walk(encode(picture(), "JPEG")).texts == []
    assert png_chunks.walk(png_chunks.PNG_SIGNATURE).problems == ["the file ends before IEND"]


def test_exif_software_and_a1111_user_comment() -> None:
    facts = exif.read_exif(jpeg_with_exif(software="Adobe Firefly", user_comment=A1111_PARAMETERS))
    assert facts.software == "Adobe Firefly"
    assert facts.user_comment == A1111_PARAMETERS
    (claim,) = generator_claims({"parameters": facts.user_comment})
    assert claim.tool == "AUTOMATIC1111"
    little = exif.read_exif(jpeg_with_exif(user_comment="made by hand", utf16_be=False))
    assert little.user_comment == "made by hand"
    assert exif.read_exif(encode(picture(), "JPEG")).empty
    assert exif.read_exif(b"not an image").empty


def test_exif_of_a_png_comes_from_its_chunk_not_from_decoding() -> None:
    block = Image_exif_block("Stable Diffusion")
    data = png_with_chunks(after=[png_chunk(b"eXIf", block)])
    assert exif.read_exif(data).empty  # Pillow would decode the pixels to find it
    assert exif.read_exif_block(png_chunks.walk(data).exif or b"").software == "Stable Diffusion"
    assert exif.read_exif_block(b"garbage").empty


def Image_exif_block(software: str) -> bytes:
    from PIL import Image

    block = Image.Exif()
    block[0x0131] = software
    return block.tobytes()[6:]  # without the "Exif\0\0" prefix, as PNG stores it

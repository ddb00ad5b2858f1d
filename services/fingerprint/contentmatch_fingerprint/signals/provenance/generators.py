"""Names of AI generators as files declare them (EXIF ``Software``, PNG text, audio comments).

A declared name is matched against this table so that reports name the system the same way
whatever the writer wrote (``DALL·E 3``, ``dall-e``). Only names that denote a generative AI
product are listed: a generic editor (Photoshop, GIMP) never makes a file AI-generated.
"""

from __future__ import annotations

import re

# (pattern, the system's name in reports); the first pattern that matches wins.
_GENERATORS: tuple[tuple[str, str], ...] = (
    (r"\bstable[\s_-]?diffusion\b|\bsdxl\b", "Stable Diffusion"),
    (r"\bcomfy[\s_-]?ui\b", "ComfyUI"),
    (r"\bautomatic1111\b|\bstable-diffusion-webui\b|\bsd[\s_-]?web[\s_-]?ui\b", "AUTOMATIC1111"),
    (r"\binvoke[\s_-]?ai\b", "InvokeAI"),
    (r"\bfooocus\b", "Fooocus"),
    (r"\bnovel[\s_-]?ai\b", "NovelAI"),
    (r"\bmidjourney\b", "Midjourney"),
    (r"\bdall[\s·.\-_]?e\b", "DALL-E"),
    (r"\bgpt[\s-]?image\b|\bchatgpt\b|\bopenai\b", "OpenAI"),
    (r"\bfirefly\b", "Adobe Firefly"),
    (r"\bimagen\b|\bgemini\b|\bnano[\s-]?banana\b", "Google"),
    (r"\bbing image creator\b|\bmicrosoft designer\b", "Microsoft Designer"),
    (r"\bleonardo\.?ai\b", "Leonardo.Ai"),
    (r"\bideogram\b", "Ideogram"),
    (r"\bflux(\.1)?\b.*\b(dev|schnell|pro|kontext)\b|\bblack forest labs\b", "FLUX"),
    (r"\brunway(ml)?\b", "Runway"),
    (r"\bsora\b", "Sora"),
    (r"\bsuno\b", "Suno"),
    (r"\budio\b", "Udio"),
    (r"\belevenlabs\b", "ElevenLabs"),
)
_COMPILED = tuple((re.compile(p, re.IGNORECASE), name) for p, name in _GENERATORS)
_SCAN_CHARS = 2000  # only the start of a long value is looked at


def ai_generator(text: str | None) -> str | None:
    """The AI generator ``text`` names (see the table), or None."""
    if not text:
        return None
    head = text[:_SCAN_CHARS]
    for pattern, name in _COMPILED:
        if pattern.search(head):
            return name
    return None

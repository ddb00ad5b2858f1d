"""What AI front-ends write about a generation, as text: AUTOMATIC1111/Forge ``parameters``,
ComfyUI ``prompt``/``workflow`` graphs, InvokeAI, Fooocus, NovelAI and SwarmUI metadata, and a
known generator named in a ``Software``/``Source`` field.

Input is keyword -> text (PNG text chunks, or EXIF ``UserComment`` under ``parameters``); every
value is bounded before it is parsed (JSON at most ``MAX_JSON_CHARS``, a settings line at most
``MAX_LINE_CHARS``), and a claim needs a real sign of the front-end (A1111's ``Steps:`` line, a
ComfyUI node graph), not only a keyword.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from contentmatch_fingerprint.signals.provenance.generators import ai_generator

MAX_JSON_CHARS = 1 << 20
MAX_LINE_CHARS = 4000
MAX_NODES = 5000
MAX_PROMPT_CHARS = 300
MAX_MODELS = 8

_SETTING = re.compile(
    r'\s*([A-Za-z][\w \-/]{0,40}):\s*("(?:[^"\\]|\\.){0,1000}"|[^,]{0,500})(?:,|$)'
)
_DREAM_SEED = re.compile(r"\s-S\s*\d+")  # InvokeAI's legacy "Dream" line: "prompt" -s 50 -S 42
_NAMING_FIELDS = ("Software", "Source", "Generator", "Creator Tool")
_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name", "lora_name")


@dataclass(frozen=True)
class GeneratorClaim:
    """A front-end's record of a generation: the model family, the tool, what it says."""

    ai_system: str  # the model family (Stable Diffusion, FLUX, NovelAI...)
    tool: str  # the front-end that wrote the record
    keyword: str  # where it was found
    models: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def _clip(text: str, limit: int = MAX_PROMPT_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(text: str) -> Any:
    if len(text) > MAX_JSON_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _family(models: list[str] | tuple[str, ...], default: str = "Stable Diffusion") -> str:
    for model in models:
        if (name := ai_generator(model)) is not None:
            return name
        if re.search(r"\bflux", model, re.IGNORECASE):
            return "FLUX"
    return default


def a1111_settings(text: str) -> dict[str, str] | None:
    """The ``Steps: 20, Sampler: ..., Model: ...`` line of an A1111 ``parameters`` text."""
    for line in reversed(text.strip().splitlines()[-8:]):
        line = line.strip()
        if line.startswith("Steps:") and len(line) <= MAX_LINE_CHARS:
            settings = {}
            for match in _SETTING.finditer(line):
                settings[match.group(1).strip()] = match.group(2).strip().strip('"')
            return settings
    return None


def _a1111(keyword: str, text: str) -> GeneratorClaim | None:
    settings = a1111_settings(text)
    if settings is None:
        return None
    prompt = text.split("\nNegative prompt:", 1)[0].split("\nSteps:", 1)[0]
    version = settings.get("Version", "")
    tool = "Forge" if version.startswith("f") else "AUTOMATIC1111"
    models = tuple(m for m in (settings.get("Model"),) if m)
    details = {"prompt": _clip(prompt)} | {
        k.lower().replace(" ", "_"): _clip(v, 100)
        for k, v in settings.items()
        if k in ("Model", "Model hash", "Version", "Seed", "Steps", "Sampler", "Size")
    }
    return GeneratorClaim(_family(models), tool, keyword, models, details)


def _comfy_models(nodes: list[dict[str, Any]]) -> list[str]:
    models: list[str] = []
    for node in nodes[:MAX_NODES]:
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            for key in _MODEL_INPUTS:
                value = inputs.get(key)
                if isinstance(value, str) and value not in models and len(models) < MAX_MODELS:
                    models.append(_clip(value, 200))
        if "Loader" in str(node.get("type", "")):
            for value in node.get("widgets_values") or []:
                if (
                    isinstance(value, str)
                    and value.endswith((".safetensors", ".ckpt", ".gguf", ".pt"))
                    and value not in models
                    and len(models) < MAX_MODELS
                ):
                    models.append(_clip(value, 200))
    return models


def _comfy(keyword: str, text: str) -> GeneratorClaim | None:
    graph = _json(text)
    nodes: list[dict[str, Any]] = []
    if keyword == "prompt" and isinstance(graph, dict):
        nodes = [n for n in list(graph.values())[:MAX_NODES] if isinstance(n, dict)]
        if not any("class_type" in n for n in nodes):
            return None
    elif keyword == "workflow" and isinstance(graph, dict):
        raw = graph.get("nodes")
        if not isinstance(raw, list):
            return None
        nodes = [n for n in raw[:MAX_NODES] if isinstance(n, dict) and "type" in n]
        if not nodes:
            return None
    else:
        return None
    models = _comfy_models(nodes)
    details = {"nodes": len(nodes), "models": models}
    return GeneratorClaim(_family(models), "ComfyUI", keyword, tuple(models), details)


def _invoke(keyword: str, text: str) -> GeneratorClaim | None:
    meta = _json(text)
    if not isinstance(meta, dict):
        return None
    model = meta.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    image = meta.get("image")
    prompt = meta.get("positive_prompt") or (
        image.get("prompt") if isinstance(image, dict) else None
    )
    models = (str(model)[:200],) if model else ()
    details = {"prompt": _clip(str(prompt))} if prompt else {}
    return GeneratorClaim(_family(models), "InvokeAI", keyword, models, details)


def _json_parameters(keyword: str, text: str) -> GeneratorClaim | None:
    """``parameters`` written as JSON (Fooocus, SwarmUI)."""
    meta = _json(text)
    if not isinstance(meta, dict):
        return None
    if isinstance(swarm := meta.get("sui_image_params"), dict):
        model = swarm.get("model")
        models = (str(model)[:200],) if model else ()
        details = {"prompt": _clip(str(swarm.get("prompt", "")))}
        return GeneratorClaim(_family(models), "SwarmUI", keyword, models, details)
    if "base_model" in meta or str(meta.get("version", "")).lower().startswith("fooocus"):
        model = meta.get("base_model")
        models = (str(model)[:200],) if model else ()
        details = {"prompt": _clip(str(meta.get("prompt", "")))}
        return GeneratorClaim(_family(models), "Fooocus", keyword, models, details)
    return None


def generator_claims(texts: dict[str, str]) -> list[GeneratorClaim]:
    """Every front-end record in ``texts`` (keyword -> text), at most one per keyword."""
    claims: list[GeneratorClaim] = []
    for keyword, text in texts.items():
        claim: GeneratorClaim | None = None
        if keyword == "parameters":
            stripped = text.lstrip()
            claim = (
                _json_parameters(keyword, text)
                if stripped.startswith("{")
                else _a1111(keyword, text)
            )
        elif keyword in ("prompt", "workflow"):
            claim = _comfy(keyword, text)
        elif keyword in ("invokeai_metadata", "sd-metadata"):
            claim = _invoke(keyword, text)
        elif keyword == "Dream" and _DREAM_SEED.search(text[:MAX_LINE_CHARS]):
            claim = GeneratorClaim(
                "Stable Diffusion", "InvokeAI", keyword, (), {"prompt": _clip(text)}
            )
        elif keyword in _NAMING_FIELDS and (name := ai_generator(text)) is not None:
            family = _family((texts.get("Source", ""),), name) if name == "NovelAI" else name
            claim = GeneratorClaim(family, name, keyword, (), {"value": _clip(text, 200)})
        if claim is not None:
            claims.append(claim)
    return claims

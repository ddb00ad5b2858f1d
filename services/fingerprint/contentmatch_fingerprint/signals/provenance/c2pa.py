"""C2PA Content Credentials: every manifest in a file's store, validated against trust lists.

``c2pa-python`` reads and validates the store with remote manifest fetching and OCSP off (no
network). Each manifest gives evidence: an action whose ``digitalSourceType`` says a trained
model made the content (``ai_generated``; in an edit chain it sits in an ingredient's manifest),
otherwise its signed history (``content_credentials``); the active manifest's training-mining
assertion gives the file's TDM reservation.

Strength follows the signer's trust and the validation (see ``docs/provenance.md``): a manifest
whose signer chains to the official C2PA list is ``trusted``, to the CAI's frozen interim list
only ``interim``, to the operator's own anchors ``trusted`` (list ``operator``), else
``untrusted``; any validation failure makes it ``invalid``, and a failure of the active manifest
(the file's bytes or the store were changed) makes every manifest of the store invalid. A store
the SDK cannot even parse ("present but broken") is one piece of ``invalid`` evidence.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import c2pa

import contentmatch_shared
from contentmatch_shared.media import SNIFF_BYTES, sniff
from contentmatch_shared.provenance import (
    ProvenanceEvidence,
    SignerInfo,
    TdmReservation,
    TrustLevel,
    digital_source_type_name,
    is_ai_digital_source_type,
)

TRUST_DIR = Path(contentmatch_shared.__file__).with_name("data") / "c2pa"

# What the sniffer names and the SDK reads (HEIC/AVIF are refused before any reader runs).
C2PA_FORMATS = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/tiff",
        "audio/wav",
        "audio/mpeg",
        "audio/flac",
        "audio/mp4",
    }
)
ACTIONS_LABELS = ("c2pa.actions", "c2pa.actions.v2")
TRAINING_MINING_LABELS = ("c2pa.training-mining", "cawg.training-mining")
RESERVING_USES = ("notAllowed", "constrained")
TRUSTED_CODE = "signingCredential.trusted"
# Listed as a failure once anchors are configured, but it says who vouches, not that the
# manifest is broken: such a manifest is valid and untrusted.
UNTRUSTED_CODE = "signingCredential.untrusted"
# The bytes every embedded store carries (JUMBF box type, store label): an SDK error on a file
# holding them is a broken manifest; on a file without them, the SDK could not parse the asset.
MANIFEST_MARKERS = (b"jumb", b"c2pa")
REMOTE_PREFIX = "Remote:"  # the SDK's error for a manifest it may not fetch
MAX_ACTIONS = 12
MAX_INGREDIENTS = 12
MAX_CODES = 16

_NO_NETWORK = {
    "remote_manifest_fetch": False,
    "ocsp_fetch": False,
    "verify_trust": True,
}


@dataclass(frozen=True)
class TrustLists:
    """PEM anchors per list; ``operator`` is empty unless the operator configured their own."""

    official: str
    interim_anchors: str
    interim_allowed: str
    interim_config: str
    operator: str = ""

    @classmethod
    def shipped(cls, operator: str = "") -> TrustLists:
        return cls(
            official=(TRUST_DIR / "C2PA-TRUST-LIST.pem").read_text(),
            interim_anchors=(TRUST_DIR / "interim-anchors.pem").read_text(),
            interim_allowed=(TRUST_DIR / "interim-allowed.pem").read_text(),
            interim_config=(TRUST_DIR / "interim-store.cfg").read_text(),
            operator=operator,
        )

    def settings(self) -> list[tuple[str, dict[str, Any]]]:
        """SDK settings per list, in the order a signer is looked up."""
        lists = [
            ("official", {"trust_anchors": self.official}),
            (
                "interim",
                {
                    "trust_anchors": self.interim_anchors,
                    "allowed_list": self.interim_allowed,
                    "trust_config": self.interim_config,
                },
            ),
        ]
        lists.append(("operator", {"trust_anchors": self.operator}))
        out = []
        for name, trust in lists:
            given = {k: v for k, v in trust.items() if v.strip()}  # the SDK refuses empty PEM
            if name == "official" or given.get("trust_anchors"):
                out.append((name, {"verify": dict(_NO_NETWORK), "trust": given}))
        return out


@lru_cache(maxsize=1)
def configured_trust() -> TrustLists:
    from contentmatch_shared.settings import get_settings

    extra = get_settings().c2pa_extra_trust_anchors_file
    return TrustLists.shipped(Path(extra).read_text() if extra else "")


_contexts: dict[int, list[tuple[str, c2pa.Context]]] = {}
_contexts_lock = threading.Lock()


def _contexts_for(trust: TrustLists) -> list[tuple[str, c2pa.Context]]:
    """One SDK context per list, built once per process and trust configuration."""
    key = hash(trust)
    with _contexts_lock:
        if key not in _contexts:
            _contexts[key] = [
                (name, c2pa.Context(c2pa.Settings.from_dict(settings)))
                for name, settings in trust.settings()
            ]
        return _contexts[key]


def warm_up() -> None:
    _contexts_for(configured_trust())


# ---------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class ManifestView:
    label: str
    manifest: dict[str, Any]
    codes: list[str] = field(default_factory=list)  # every validation code for this manifest
    failures: list[str] = field(default_factory=list)
    certificate: dict[str, Any] = field(default_factory=dict)  # crJSON's certificateInfo


@dataclass
class StoreView:
    active: str | None
    state: str | None
    manifests: dict[str, ManifestView]
    active_failures: list[str]


def _codes(results: dict[str, Any] | None, kinds: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for kind in kinds:
        for entry in (results or {}).get(kind) or []:
            if isinstance(entry, dict) and isinstance(entry.get("code"), str):
                if kind == "failure" and entry["code"] == UNTRUSTED_CODE:
                    continue
                out.append(entry["code"])
    return out


def _read_store(data: bytes, fmt: str, context: c2pa.Context) -> StoreView:
    with c2pa.Reader(fmt, io.BytesIO(data), context=context) as reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state()
        try:
            cr = json.loads(reader.crjson())
        except (c2pa.C2paError, ValueError):
            cr = {}
    manifests = {
        label: ManifestView(label=label, manifest=m)
        for label, m in (store.get("manifests") or {}).items()
        if isinstance(m, dict)
    }
    for entry in cr.get("manifests") or []:
        view = manifests.get(entry.get("label")) if isinstance(entry, dict) else None
        if view is None:
            continue
        results = entry.get("validationResults") or {}
        view.codes = _codes(results, ("success", "informational", "failure"))
        view.failures = _codes(results, ("failure",))
        cert = (entry.get("signature") or {}).get("certificateInfo")
        view.certificate = cert if isinstance(cert, dict) else {}
    results = store.get("validation_results") or {}
    active_failures = _codes(results.get("activeManifest"), ("failure",))
    active = store.get("active_manifest")
    if active in manifests:
        manifests[active].failures = sorted(set(manifests[active].failures) | set(active_failures))
        manifests[active].codes = sorted(
            set(manifests[active].codes) | set(_codes(results.get("activeManifest"), ("success",)))
        )
    for delta in results.get("ingredientDeltas") or []:
        deltas = (delta or {}).get("validationDeltas") or {}
        failed = _codes(deltas, ("failure",))
        trusted = TRUSTED_CODE in _codes(deltas, ("success",))
        for entry in (deltas.get("failure") or []) + (deltas.get("success") or []):
            label = _manifest_of_url(entry.get("url", ""))
            if label in manifests:
                if failed:
                    manifests[label].failures = sorted(set(manifests[label].failures) | set(failed))
                if trusted:
                    manifests[label].codes.append(TRUSTED_CODE)
    return StoreView(
        active=active, state=state, manifests=manifests, active_failures=active_failures
    )


def _manifest_of_url(url: str) -> str | None:
    """``urn:c2pa:…`` from ``self#jumbf=/c2pa/urn:c2pa:…/c2pa.signature``."""
    marker = "/c2pa/"
    if marker not in url:
        return None
    return url.split(marker, 1)[1].split("/", 1)[0] or None


def _trust_levels(
    data: bytes, fmt: str, store: StoreView, contexts: list[tuple[str, c2pa.Context]]
) -> dict[str, tuple[TrustLevel, str | None]]:
    """Per manifest label: its trust level and the list that vouches for it."""
    levels: dict[str, tuple[TrustLevel, str | None]] = {}
    store_broken = bool(store.active_failures)
    for label, view in store.manifests.items():
        if store_broken or view.failures:
            levels[label] = ("invalid", None)
        elif TRUSTED_CODE in view.codes:
            levels[label] = ("trusted", "official")
        else:
            levels[label] = ("untrusted", None)
    for name, context in contexts[1:]:
        pending = [label for label, (level, _) in levels.items() if level == "untrusted"]
        if not pending:
            break
        other = _read_store(data, fmt, context)
        for label in pending:
            view = other.manifests.get(label)
            if view is not None and not view.failures and TRUSTED_CODE in view.codes:
                levels[label] = ("interim", name) if name == "interim" else ("trusted", name)
    return levels


# ---------------------------------------------------------------------------------------------
# Evidence


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, str):
        return agent or None
    if isinstance(agent, dict) and isinstance(agent.get("name"), str):
        version = agent.get("version")
        return f"{agent['name']} {version}" if isinstance(version, str) else agent["name"]
    return None


def claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info:
        name = _agent_name(info[0])
        if name:
            return name
    if isinstance(info, dict):
        return _agent_name(info)
    generator = manifest.get("claim_generator")
    return generator if isinstance(generator, str) and generator else None


def _assertions(manifest: dict[str, Any], labels: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        label = str(assertion.get("label", ""))
        # A label may carry an instance suffix (``c2pa.actions.v2__1``).
        if label.split("__", 1)[0] in labels and isinstance(assertion.get("data"), dict):
            out.append(assertion["data"])
    return out


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for data in _assertions(manifest, ACTIONS_LABELS):
        for action in data.get("actions") or []:
            if isinstance(action, dict) and isinstance(action.get("action"), str):
                actions.append(
                    {
                        "action": action["action"],
                        "digital_source_type": action.get("digitalSourceType")
                        if isinstance(action.get("digitalSourceType"), str)
                        else None,
                        "software_agent": _agent_name(action.get("softwareAgent")),
                        "when": action.get("when") if isinstance(action.get("when"), str) else None,
                    }
                )
    return actions


def training_mining_of(manifest: dict[str, Any]) -> TdmReservation | None:
    for data in _assertions(manifest, TRAINING_MINING_LABELS):
        entries = data.get("entries")
        if not isinstance(entries, dict) or not entries:
            continue
        uses = {k: v.get("use") for k, v in entries.items() if isinstance(v, dict)}
        reserved = sorted(k for k, use in uses.items() if use in RESERVING_USES)
        value = ", ".join(f"{k}={use}" for k, use in sorted(uses.items()))
        return TdmReservation(
            reserved=bool(reserved), source="c2pa", value=value[:500], uses=reserved or sorted(uses)
        )
    return None


def ingredients_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ingredient in (manifest.get("ingredients") or [])[:MAX_INGREDIENTS]:
        if isinstance(ingredient, dict):
            out.append(
                {
                    "title": ingredient.get("title"),
                    "relationship": ingredient.get("relationship"),
                    "manifest": ingredient.get("active_manifest"),
                    "format": ingredient.get("format"),
                }
            )
    return out


def _signer(view: ManifestView, level: TrustLevel) -> SignerInfo:
    info = view.manifest.get("signature_info") or {}
    subject = view.certificate.get("subject") or {}
    issuer = view.certificate.get("issuer") or {}
    issuer_name = ", ".join(str(issuer[k]) for k in ("CN", "O") if issuer.get(k)) or None
    return SignerInfo(
        common_name=subject.get("CN") or info.get("common_name"),
        organization=subject.get("O") or info.get("issuer"),
        issuer=issuer_name,
        algorithm=info.get("alg"),
        trust=level,
        signed_at=info.get("time") if isinstance(info.get("time"), str) else None,
    )


def _ingredient_titles(store: StoreView) -> dict[str, str]:
    """Manifest label → the title under which another manifest took it in as an ingredient."""
    titles: dict[str, str] = {}
    for view in store.manifests.values():
        for ingredient in ingredients_of(view.manifest):
            if ingredient["manifest"] and ingredient["title"]:
                titles.setdefault(ingredient["manifest"], str(ingredient["title"]))
    return titles


_STRENGTH_OF_TRUST: dict[TrustLevel, str] = {
    "trusted": "verified",
    "interim": "verified",
    "untrusted": "declared",
    "invalid": "invalid",
}


def evidence_of(
    store: StoreView, levels: dict[str, tuple[TrustLevel, str | None]]
) -> list[ProvenanceEvidence]:
    evidence: list[ProvenanceEvidence] = []
    titles = _ingredient_titles(store)
    order = sorted(store.manifests, key=lambda label: label != store.active)
    for label in order:
        view = store.manifests[label]
        level, trust_list = levels[label]
        strength = _STRENGTH_OF_TRUST[level]
        active = label == store.active
        where = (
            "the active manifest"
            if active
            else f"the manifest of ingredient '{titles.get(label, label)}'"
        )
        generator = claim_generator(view.manifest)
        actions = actions_of(view.manifest)
        ai_actions = [a for a in actions if is_ai_digital_source_type(a["digital_source_type"])]
        signer = _signer(view, level)
        details: dict[str, Any] = {
            "manifest": label,
            "active": active,
            "claim_generator": generator,
            "title": view.manifest.get("title"),
            "actions": actions[:MAX_ACTIONS],
            "ingredients": ingredients_of(view.manifest),
            "validation_state": store.state,
            "trust_list": trust_list,
            "failure_codes": view.failures[:MAX_CODES],
        }
        broken = (
            " (validation failed: " + ", ".join(view.failures[:3]) + ")" if view.failures else ""
        )
        if ai_actions:
            first = ai_actions[0]
            system = first["software_agent"] or generator
            dst = digital_source_type_name(first["digital_source_type"])
            evidence.append(
                ProvenanceEvidence(
                    source="c2pa",
                    kind="ai_generated",
                    strength=strength,  # type: ignore[arg-type]
                    summary=f"{first['action']} ({dst}) by {system or 'an unnamed generator'} "
                    f"in {where}{broken}",
                    ai_system=system,
                    digital_source_type=first["digital_source_type"],
                    signer=signer,
                    details=details,
                )
            )
        else:
            names = ", ".join(a["action"] for a in actions[:4]) or "no actions"
            evidence.append(
                ProvenanceEvidence(
                    source="c2pa",
                    kind="content_credentials",
                    strength=strength,  # type: ignore[arg-type]
                    summary=f"C2PA manifest by {generator or 'an unnamed generator'}: {names}, "
                    f"{len(details['ingredients'])} ingredient(s), in {where}{broken}",
                    signer=signer,
                    details=details,
                )
            )
        if active and (reservation := training_mining_of(view.manifest)) is not None:
            evidence.append(
                ProvenanceEvidence(
                    source="c2pa",
                    kind="tdm_reservation",
                    strength=strength,  # type: ignore[arg-type]
                    summary=f"C2PA training-mining assertion: {reservation.value}{broken}",
                    signer=signer,
                    tdm_reservation=reservation,
                    details={"manifest": label},
                )
            )
    return evidence


def _broken(exc: c2pa.C2paError) -> ProvenanceEvidence:
    message = str(exc)[:300]
    details: dict[str, Any] = {"error": type(exc).__name__.lstrip("_"), "message": message}
    summary = f"C2PA manifest present but unreadable: {message}"
    if message.startswith(REMOTE_PREFIX):
        # The file names a manifest stored elsewhere: never fetched (no network at run time),
        # so nothing in it can be checked.
        url = message.rsplit(" ", 1)[-1]
        details["remote_url"] = url
        summary = f"C2PA manifest stored remotely ({url}), not fetched: it cannot be verified"
    return ProvenanceEvidence(
        source="c2pa",
        kind="content_credentials",
        strength="invalid",
        summary=summary,
        details=details,
    )


def c2pa_format(data: bytes) -> str | None:
    sniffed = sniff(data[:SNIFF_BYTES])
    if sniffed is None or sniffed.content_type not in C2PA_FORMATS:
        return None
    return sniffed.content_type


def read_c2pa(
    data: bytes, media_type: str, trust: TrustLists | None = None
) -> list[ProvenanceEvidence]:
    """The C2PA evidence of one file: none without a manifest store."""
    fmt = c2pa_format(data)
    if fmt is None:
        return []
    contexts = _contexts_for(trust or configured_trust())
    try:
        store = _read_store(data, fmt, contexts[0][1])
    except c2pa.C2paError.ManifestNotFound:
        return []
    except c2pa.C2paError as exc:
        remote = str(exc).startswith(REMOTE_PREFIX)
        if not remote and not any(marker in data for marker in MANIFEST_MARKERS):
            raise  # the SDK could not parse the asset itself: a reader failure, not evidence
        return [_broken(exc)]
    if not store.manifests:
        return []
    try:
        levels = _trust_levels(data, fmt, store, contexts)
    except c2pa.C2paError as exc:
        return [_broken(exc)]
    return evidence_of(store, levels)

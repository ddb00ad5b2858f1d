"""The C2PA reader on files signed at test time with a generated certificate chain."""

from __future__ import annotations

import pytest

from contentmatch_fingerprint.signals.provenance import ReaderSpec, read_provenance
from contentmatch_fingerprint.signals.provenance.c2pa import TrustLists, read_c2pa
from contentmatch_shared.provenance import Provenance
from tests.fixtures import c2pa_media as cm
from tests.fixtures.audio import codec_extension, encode, make_track, write_wav


@pytest.fixture(scope="module")
def chain() -> cm.TestChain:
    return cm.TestChain.new()


@pytest.fixture(scope="module")
def editor_chain() -> cm.TestChain:
    return cm.TestChain.new(org="PhotoEditor Co", signer_cn="PhotoEditor Signer")


@pytest.fixture(scope="module")
def no_anchor() -> TrustLists:
    return TrustLists.shipped()


@pytest.fixture(scope="module")
def operator(chain: cm.TestChain) -> TrustLists:
    return TrustLists.shipped(operator=chain.root_pem.decode())


@pytest.fixture(scope="module")
def ai_jpeg(chain: cm.TestChain) -> bytes:
    manifest = cm.created_manifest(
        training_mining={"c2pa.ai_training": "notAllowed", "c2pa.data_mining": "allowed"}
    )
    return cm.sign(cm.jpeg(), "image/jpeg", manifest, chain)


def test_ai_signed_image_with_the_test_root_as_anchor_is_verified(
    ai_jpeg: bytes, operator: TrustLists, chain: cm.TestChain
) -> None:
    evidence = read_c2pa(ai_jpeg, "image", operator)
    ai = next(p for p in evidence if p.kind == "ai_generated")
    assert ai.strength == "verified"
    assert ai.ai_system == "ImageMaker Diffusion 1.0"
    assert ai.digital_source_type == cm.TRAINED
    assert ai.signer is not None and ai.signer.trust == "trusted"
    assert ai.signer.common_name == chain.signer_cn
    assert ai.signer.organization == "ImageMaker Inc"
    assert "Test Intermediate CA" in (ai.signer.issuer or "")
    assert (ai.signer.algorithm or "").lower() == "es256"
    assert ai.details["trust_list"] == "operator" and ai.details["active"] is True
    assert ai.details["claim_generator"] == "ImageMaker 1.0"
    assert Provenance.from_evidence(evidence).ai_generated


def test_without_an_anchor_the_same_file_is_declared_by_an_untrusted_signer(
    ai_jpeg: bytes, no_anchor: TrustLists
) -> None:
    [ai] = [p for p in read_c2pa(ai_jpeg, "image", no_anchor) if p.kind == "ai_generated"]
    assert ai.strength == "declared" and ai.signer is not None
    assert ai.signer.trust == "untrusted"


def test_trust_lists_are_told_apart(ai_jpeg: bytes, chain: cm.TestChain) -> None:
    root = chain.root_pem.decode()
    shipped = TrustLists.shipped()
    official = TrustLists(root, "", "", shipped.interim_config)
    interim = TrustLists(shipped.official, root, "", shipped.interim_config)
    [a] = [p for p in read_c2pa(ai_jpeg, "image", official) if p.kind == "ai_generated"]
    [b] = [p for p in read_c2pa(ai_jpeg, "image", interim) if p.kind == "ai_generated"]
    assert (a.signer.trust, a.details["trust_list"]) == ("trusted", "official")  # type: ignore[union-attr]
    assert (b.signer.trust, b.details["trust_list"]) == ("interim", "interim")  # type: ignore[union-attr]
    assert a.strength == b.strength == "verified"


def test_training_mining_assertion_is_the_files_tdm_reservation(
    ai_jpeg: bytes, operator: TrustLists
) -> None:
    provenance = Provenance.from_evidence(read_c2pa(ai_jpeg, "image", operator))
    reservation = provenance.tdm_reservation
    assert reservation is not None and reservation.reserved
    assert reservation.uses == ["c2pa.ai_training"]
    assert "c2pa.data_mining=allowed" in reservation.value


def test_a_flipped_byte_is_invalid_evidence_never_grounds(
    ai_jpeg: bytes, operator: TrustLists
) -> None:
    evidence = read_c2pa(cm.flip_pixel_byte(ai_jpeg), "image", operator)
    ai = next(p for p in evidence if p.kind == "ai_generated")
    assert ai.strength == "invalid" and ai.signer.trust == "invalid"  # type: ignore[union-attr]
    assert "assertion.dataHash.mismatch" in ai.details["failure_codes"]
    provenance = Provenance.from_evidence(evidence)
    assert not provenance.ai_generated and provenance.tdm_reservation is None


def test_a_manifest_moved_onto_another_file_is_invalid(
    ai_jpeg: bytes, operator: TrustLists
) -> None:
    moved = cm.with_moved_manifest(ai_jpeg, cm.jpeg((20, 160, 60)))
    evidence = read_c2pa(moved, "image", operator)
    assert evidence and all(p.strength == "invalid" for p in evidence)
    assert not Provenance.from_evidence(evidence).ai_generated


def test_an_unparseable_store_is_present_but_broken(ai_jpeg: bytes, operator: TrustLists) -> None:
    [piece] = read_c2pa(cm.corrupt_manifest_header(ai_jpeg), "image", operator)
    assert piece.strength == "invalid" and piece.kind == "content_credentials"
    assert "present but unreadable" in piece.summary


def test_re_encoded_and_plain_files_have_no_c2pa_evidence(
    ai_jpeg: bytes, operator: TrustLists
) -> None:
    assert read_c2pa(cm.reencoded(ai_jpeg), "image", operator) == []
    assert read_c2pa(cm.jpeg(), "image", operator) == []
    assert read_c2pa(b"not media at all", "image", operator) == []


def test_an_asset_the_sdk_cannot_parse_is_a_reader_failure_not_evidence() -> None:
    broken = b"\xff\xd8\xff\xe0" + b"\x00" * 200
    provenance = read_provenance(broken, "image", [ReaderSpec("c2pa", read_c2pa)])
    assert provenance.evidence == [] and [f.reader for f in provenance.failures] == ["c2pa"]


def test_edit_chain_finds_the_ai_claim_in_the_ingredients_manifest(
    ai_jpeg: bytes, editor_chain: cm.TestChain, chain: cm.TestChain
) -> None:
    edited = cm.edited_from(ai_jpeg, cm.reencoded(ai_jpeg), editor_chain)
    anchors = TrustLists.shipped(operator=chain.root_pem.decode())
    evidence = read_c2pa(edited, "image", anchors)
    active = next(p for p in evidence if p.details.get("active"))
    assert active.kind == "content_credentials" and active.strength == "declared"
    assert "PhotoEditor 2.0" in active.summary and "c2pa.opened" in active.summary
    assert active.details["ingredients"][0]["relationship"] == "parentOf"
    ai = next(p for p in evidence if p.kind == "ai_generated")
    assert ai.details["active"] is False and "ingredient 'generated.jpg'" in ai.summary
    assert ai.strength == "verified"  # the generator's signer chains to the anchor
    provenance = Provenance.from_evidence(evidence)
    assert provenance.ai_generated and provenance.ai_system == "ImageMaker Diffusion 1.0"


def test_png_and_wav_carry_manifests_too(
    chain: cm.TestChain, operator: TrustLists, tmp_path: object
) -> None:
    png = cm.sign(cm.png(), "image/png", cm.created_manifest(source_type=cm.COMPOSITE), chain)
    [ai] = [p for p in read_c2pa(png, "image", operator) if p.kind == "ai_generated"]
    assert ai.strength == "verified" and ai.digital_source_type == cm.COMPOSITE
    path = f"{tmp_path}/track.wav"
    write_wav(path, make_track(8701, seconds=2.0))
    with open(path, "rb") as fh:
        wav = cm.sign(
            fh.read(), "audio/wav", cm.created_manifest("SongMaker", "SongMaker AI"), chain
        )
    [ai] = [p for p in read_c2pa(wav, "audio", operator) if p.kind == "ai_generated"]
    assert ai.strength == "verified" and ai.ai_system == "SongMaker AI 1.0"


def test_a_capture_is_content_credentials_not_ai(chain: cm.TestChain, operator: TrustLists) -> None:
    photo = cm.sign(
        cm.jpeg(), "image/jpeg", cm.created_manifest("Camera", "Camera", cm.CAPTURE), chain
    )
    [piece] = read_c2pa(photo, "image", operator)
    assert piece.kind == "content_credentials" and piece.strength == "verified"
    assert not Provenance.from_evidence([piece]).ai_generated


def test_a_remote_manifest_is_never_fetched(chain: cm.TestChain, operator: TrustLists) -> None:
    # Port 9 (discard) on loopback: had the SDK tried, the error would name the request.
    url = "http://127.0.0.1:9/manifest.c2pa"
    data = cm.remote_only(cm.jpeg(), cm.created_manifest(), chain, url)
    [piece] = read_c2pa(data, "image", operator)
    assert piece.strength == "invalid" and piece.details["remote_url"] == url
    assert "must fetch remote manifests" in piece.details["message"]
    assert not Provenance.from_evidence([piece]).ai_generated


@pytest.mark.parametrize(
    ("codec", "mime"), [("mp3", "audio/mpeg"), ("flac", "audio/flac"), ("m4a", "audio/mp4")]
)
def test_compressed_audio_carries_manifests(
    codec: str, mime: str, chain: cm.TestChain, operator: TrustLists, tmp_path: object
) -> None:
    wav = f"{tmp_path}/track.wav"
    write_wav(wav, make_track(8702, seconds=2.0))
    path = encode(wav, f"{tmp_path}/track{codec_extension(codec)}", codec)
    with open(path, "rb") as fh:
        signed = cm.sign(fh.read(), mime, cm.created_manifest("SongMaker", "SongMaker AI"), chain)
    [ai] = [p for p in read_c2pa(signed, "audio", operator) if p.kind == "ai_generated"]
    assert ai.strength == "verified" and ai.ai_system == "SongMaker AI 1.0"

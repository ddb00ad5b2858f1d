"""The contract's edges, through HTTP: auth, validation errors, idempotency, failure statuses."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from contentmatch_shared.client import ApiFailure, ContentMatchClient
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes
from tests.support.stack import Stack

META = {"title": "Contract photo", "kind": "work", "policy": "block"}


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


def test_every_v1_call_needs_a_known_key(stack: Stack) -> None:
    ingest, report = stack.url("ingest"), stack.url("report")
    for method, url in [
        ("POST", f"{ingest}/v1/keys"),
        ("POST", f"{ingest}/v1/works"),
        ("GET", f"{ingest}/v1/works/wrk_x"),
        ("POST", f"{ingest}/v1/uploads"),
        ("GET", f"{ingest}/v1/uploads/upl_x"),
        ("GET", f"{report}/v1/reports"),
        ("GET", f"{report}/v1/reports/rep_x"),
    ]:
        assert _error(httpx.request(method, url)) == (401, "unauthorized")
        bad = httpx.request(method, url, headers={"Authorization": "Bearer nope"})
        assert _error(bad) == (401, "unauthorized")


def test_roles_are_enforced(tenants: Tenants) -> None:
    png = to_bytes(make_image(7), "PNG")
    with pytest.raises(ApiFailure) as err:
        tenants.tube.register_work(png, "a.png", META)
    assert (err.value.status, err.value.code) == (403, "forbidden")
    with pytest.raises(ApiFailure) as err:
        tenants.label.submit_upload(png, "a.png")
    assert err.value.status == 403
    with pytest.raises(ApiFailure) as err:
        tenants.label.create_key("operator", "x")
    assert err.value.status == 403
    with pytest.raises(ApiFailure) as err:
        tenants.operator.create_key("wizard", "x")
    assert (err.value.status, err.value.code) == (422, "invalid_request")


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        (None, {"metadata": json.dumps(META)}, 415, "unsupported_media_type"),
        ({"file": ("a.png", b"")}, {"metadata": json.dumps(META)}, 422, "empty_file"),
        (
            {"file": ("a.txt", b"just some text")},
            {"metadata": json.dumps(META)},
            415,
            "unsupported_media_type",
        ),
        ({"file": ("a.png", b"PNG")}, {}, 422, "invalid_metadata"),
        ({"file": ("a.png", b"PNG")}, {"metadata": "{not json"}, 422, "invalid_metadata"),
        (
            {"file": ("a.png", b"PNG")},
            {"metadata": json.dumps({"kind": "work"})},
            422,
            "invalid_metadata",
        ),
        (
            {"file": ("a.png", b"PNG")},
            {"metadata": json.dumps({"title": "t", "kind": "ai_output"})},
            422,
            "invalid_metadata",
        ),
        (
            {"file": ("a.png", b"PNG")},
            {"metadata": json.dumps({"title": "t", "policy": "destroy"})},
            422,
            "invalid_metadata",
        ),
    ],
)
def test_bad_work_submissions_get_clear_errors(
    stack: Stack, tenants: Tenants, files: dict | None, data: dict, status: int, code: str
) -> None:
    if files and files["file"][1] == b"PNG":
        files = {"file": ("a.png", to_bytes(make_image(3), "PNG"))}
    key = tenants.label._http.headers["Authorization"]
    response = httpx.post(
        f"{stack.url('ingest')}/v1/works",
        files=files,
        data=data,
        headers={"Authorization": key},
    )
    assert _error(response) == (status, code)


def _complete(response: bytes) -> bool:
    """A whole HTTP response: headers, then as many body bytes as Content-Length says."""
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def test_oversized_uploads_are_refused_before_reading_them(stack: Stack, tenants: Tenants) -> None:
    # A raw request: it announces a terabyte and sends none of it; the answer must not wait.
    key = tenants.tube._http.headers["Authorization"]
    with socket.create_connection(("127.0.0.1", stack.port("ingest")), timeout=10) as sock:
        sock.sendall(
            (
                "POST /v1/uploads HTTP/1.1\r\nHost: test\r\n"
                f"Authorization: {key}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {10**12}\r\n\r\n"
            ).encode()
        )
        response = b""
        while not _complete(response):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413"
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_unknown_ids_are_404(tenants: Tenants) -> None:
    for call in (lambda: tenants.label.work("wrk_nope"), lambda: tenants.tube.upload("upl_nope")):
        with pytest.raises(ApiFailure) as err:
            call()
        assert (err.value.status, err.value.code) == (404, "not_found")


def test_idempotency_key_replays_and_refuses_reuse(tenants: Tenants) -> None:
    png = to_bytes(make_image(41), "PNG")
    first = tenants.label.register_work(png, "p.png", META, idempotency_key="contract-1")
    again = tenants.label.register_work(png, "p.png", META, idempotency_key="contract-1")
    assert first == again
    with pytest.raises(ApiFailure) as err:
        tenants.label.register_work(
            png, "p.png", {**META, "title": "Another"}, idempotency_key="contract-1"
        )
    assert (err.value.status, err.value.code) == (409, "idempotency_key_reused")
    # Keys are per tenant: another tenant's identical key is a new request.
    other = tenants.rival.register_work(png, "p.png", META, idempotency_key="contract-1")
    assert other != first
    # (an image nobody registered: this test must not create reports other tests count)
    stranger = to_bytes(make_image(4100), "PNG")
    up1 = tenants.tube.submit_upload(stranger, "u.png", idempotency_key="contract-u")
    assert tenants.tube.submit_upload(stranger, "u.png", idempotency_key="contract-u") == up1


def test_concurrent_first_requests_with_one_key_make_one_work(tenants: Tenants) -> None:
    """A client retrying while its first request is still in flight: no second work."""
    png = to_bytes(make_image(4302), "PNG")
    meta = {**META, "title": "Sent four times at once"}
    with ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(
                lambda _: tenants.label.register_work(png, "p.png", meta, idempotency_key="race-1"),
                range(4),
            )
        )
    assert len(set(ids)) == 1, ids
    assert tenants.label.wait_work(ids[0])["status"] == "indexed"
    assert tenants.label.register_work(png, "p.png", meta, idempotency_key="race-1") == ids[0]


def test_undecodable_media_ends_failed_with_a_reason(tenants: Tenants) -> None:
    broken = b"\xff\xd8\xff\xe0" + b"\x00garbage" * 100  # a JPEG header, then nothing valid
    work_id = tenants.label.register_work(broken, "broken.jpg", META)
    work = tenants.label.wait_work(work_id)
    assert work["status"] == "failed"
    assert work["error"]["code"]
    assert work["error"]["message"]
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(broken, "b.jpg"))
    assert upload["status"] == "failed"
    assert upload["matches"] == [] and upload["report_id"] is None


def test_work_status_shows_the_contract_fields(tenants: Tenants) -> None:
    meta = {
        **META,
        "identifiers": {"isrc": "USRC17607839"},
        "territories": ["fr", "DE"],
    }
    work_id = tenants.label.register_work(to_bytes(make_image(43), "JPEG"), "w.jpg", meta)
    work = tenants.label.wait_work(work_id)
    assert work["status"] == "indexed"
    for field in ("work_id", "status", "media_type", "title", "kind", "tenant"):
        assert field in work
    assert work["territories"] == ["FR", "DE"]
    assert work["identifiers"] == {"isrc": "USRC17607839"}
    assert work["tenant"] == "label"
    # The same tenant's enforcement key may read it; other tenants may not.
    assert tenants.label_enforcement.work(work_id)["work_id"] == work_id
    with pytest.raises(ApiFailure) as err:
        tenants.rival.work(work_id)
    assert err.value.status == 404


def test_health_ready_and_metrics_need_no_key(stack: Stack) -> None:
    for service in ("ingest", "fingerprint", "match", "report"):
        base = stack.url(service)
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert "cm_http_requests_total" in metrics.text


def test_client_errors_carry_the_error_shape(stack: Stack) -> None:
    client = ContentMatchClient("nope")
    client.endpoints.ingest = stack.url("ingest")
    with pytest.raises(ApiFailure) as err:
        client.work("wrk_1")
    assert err.value.code == "unauthorized"

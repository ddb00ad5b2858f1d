"""API abuse through HTTP: credentials checked before bodies, bounded bodies, rate limits,
bounded and validated metadata."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes
from tests.support.raw_http import post_streaming
from tests.support.stack import SERVICES, Stack

META = {"title": "Abuse photo", "kind": "work", "policy": "track"}
_MIB = 1 << 20


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return response.status_code, body["error"]["code"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer clé-non-ascii".encode(),
        b"Bearer \xff\xfe\xfd",
        b"Basic dXNlcjpwYXNzd29yZA==",
        b"Bearer " + b"A" * 5000,
        b"Bearer tab\there",
    ],
    ids=["utf8", "latin1", "basic", "absurd-length", "control-char"],
)
def test_malformed_credentials_are_401_on_every_service(stack: Stack, header: bytes) -> None:
    for service in SERVICES:
        # Any /v1 path: the credentials are judged before routing, on every service.
        url = f"{stack.url(service)}/v1/works/wrk_x"
        response = httpx.get(url, headers={"Authorization": header})
        assert _error(response) == (401, "malformed_credentials"), service
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/keys", "application/json"), ("/v1/uploads", "multipart/form-data; boundary=x")],
)
def test_a_200_mib_body_with_a_bad_key_is_refused_before_it_is_read(
    stack: Stack, path: str, content_type: str
) -> None:
    answer = post_streaming(
        "127.0.0.1", stack.port("ingest"), path, authorization=b"Bearer not-a-key",
        body_bytes=200 * _MIB, content_type=content_type,
    )  # fmt: skip
    sent = answer.sent_bytes / _MIB
    print(f"{path}: {answer.status} after {answer.seconds:.3f} s, {sent:.1f} MiB sent")
    assert answer.status == 401, answer.head
    # What the kernel's socket buffers took, not the body: the server never read it.
    assert answer.sent_bytes < 32 * _MIB


def test_json_bodies_are_small_and_media_bodies_bounded(stack: Stack, tenants: Tenants) -> None:
    operator = tenants.operator._http.headers["Authorization"]
    big = {"role": "platform", "tenant": "x", "name": "n" * (100 * 1024)}
    headers = {"Authorization": operator}
    response = httpx.post(f"{stack.url('ingest')}/v1/keys", json=big, headers=headers)
    assert _error(response) == (413, "payload_too_large")
    # Chunked (no Content-Length): cut off once past the limit, still 413.
    chunks = iter([b'{"role": "platform", "tenant": "x", "name": "', b"n" * (100 * 1024), b'"}'])
    response = httpx.post(
        f"{stack.url('ingest')}/v1/keys", content=chunks,
        headers={"Authorization": operator, "Content-Type": "application/json"},
    )  # fmt: skip
    assert _error(response) == (413, "payload_too_large")


def test_a_key_over_its_rate_gets_429_with_retry_after(stack: Stack, tenants: Tenants) -> None:
    key = tenants.operator.create_key("enforcement", "hammer")  # 20/s, burst 40 by default
    statuses = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(120):
            response = client.get(f"{stack.url('ingest')}/v1/no-such-route")
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses[0] == 404  # authenticated, then not found
    assert statuses[-1] == 429, statuses
    assert _error(response) == (429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # Another key is not affected.
    assert (
        httpx.get(
            f"{stack.url('ingest')}/v1/no-such-route", headers=tenants.tube._http.headers
        ).status_code
        == 404
    )


def _post_work(stack: Stack, tenants: Tenants, metadata: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url('ingest')}/v1/works",
        files={"file": ("a.png", to_bytes(make_image(3), "PNG"))},
        data={"metadata": metadata},
        headers=tenants.label._http.headers,
    )


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"identifiers": {"isrc": "not-an-isrc"}}, "invalid_identifier"),
        ({"identifiers": {"iswc": "T-034.524.680-2"}}, "invalid_identifier"),
        ({"identifiers": {"x" * 100: "v"}}, "invalid_identifier"),
        ({"identifiers": {"label": "v" * 1000}}, "invalid_identifier"),
        ({"identifiers": {f"k{i}": "v" for i in range(50)}}, "too_many_identifiers"),
        ({"territories": ["FR", "XX"]}, "invalid_territory"),
        ({"territories": ["UK"]}, "invalid_territory"),
        ({"identifiers": {f"k{i}": "v" * 1000 for i in range(1024)}}, "metadata_too_large"),
        ({"title": "t" * 600}, "invalid_metadata"),
    ],
    ids=[
        "isrc", "iswc-check-digit", "scheme-name", "long-value", "count", "territory",
        "uk-is-not-iso", "one-mib", "title",
    ],
)  # fmt: skip
def test_bad_metadata_is_422_with_a_field_code(
    stack: Stack, tenants: Tenants, extra: dict, code: str
) -> None:
    assert _error(_post_work(stack, tenants, json.dumps({**META, **extra}))) == (422, code)


def test_upload_territory_is_validated(stack: Stack, tenants: Tenants) -> None:
    response = httpx.post(
        f"{stack.url('ingest')}/v1/uploads",
        files={"file": ("a.png", to_bytes(make_image(3), "PNG"))},
        data={"metadata": json.dumps({"territory": "ZZ"})},
        headers=tenants.tube._http.headers,
    )
    assert _error(response) == (422, "invalid_territory")


def test_identifiers_and_territories_are_stored_normalized(tenants: Tenants) -> None:
    meta = {
        **META,
        "identifiers": {"ISRC": "us-rc1-76-07839", "iswc": "T-034.524.680-1", "cat_no": "A 1"},
        "territories": ["fr", "de", "FR"],
    }
    work_id = tenants.label.register_work(to_bytes(make_image(4401), "PNG"), "n.png", meta)
    work = tenants.label.work(work_id)
    assert work["identifiers"] == {"isrc": "USRC17607839", "iswc": "T0345246801", "cat_no": "A 1"}
    assert work["territories"] == ["FR", "DE"]

"""A small HTTP client for the public API (used by the demo, the end-to-end tests and scripts).

Nothing here reaches into the services: it speaks the contract in ``CONTRACT.md`` only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx


class ApiFailure(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            error = response.json()["error"]
            self.code, self.message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            self.code, self.message = "unknown", response.text[:200]
        super().__init__(f"{self.status} {self.code}: {self.message}")


@dataclass
class Endpoints:
    ingest: str = "http://127.0.0.1:8081"
    report: str = "http://127.0.0.1:8084"
    delivery: str = "http://127.0.0.1:8085"


class ContentMatchClient:
    def __init__(self, key: str, endpoints: Endpoints | None = None, timeout_s: float = 60) -> None:
        self.endpoints = endpoints or Endpoints()
        self._http = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        response = self._http.request(method, url, **kw)
        if response.status_code >= 400:
            raise ApiFailure(response)
        return response.json()

    # -- keys ---------------------------------------------------------------------------------
    def create_key(self, role: str, tenant: str) -> str:
        body = self._call(
            "POST", f"{self.endpoints.ingest}/v1/keys", json={"role": role, "tenant": tenant}
        )
        return str(body["key"])

    def create_key_full(self, role: str, tenant: str, **fields: Any) -> dict[str, Any]:
        """``POST /v1/keys`` with optional ``name`` and ``expires_at``: the whole answer."""
        body = {"role": role, "tenant": tenant, **fields}
        return dict(self._call("POST", f"{self.endpoints.ingest}/v1/keys", json=body))

    def list_keys(self, **params: Any) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.endpoints.ingest}/v1/keys", params=params))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"{self.endpoints.ingest}/v1/keys/{key_id}"))

    def rotate_key(self, key_id: str, grace_seconds: float | None = None) -> dict[str, Any]:
        body = {} if grace_seconds is None else {"grace_seconds": grace_seconds}
        url = f"{self.endpoints.ingest}/v1/keys/{key_id}/rotate"
        return dict(self._call("POST", url, json=body))

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        body = self._call("GET", f"{self.endpoints.ingest}/v1/audit", params=params)
        return list(body["events"])

    # -- works --------------------------------------------------------------------------------
    def register_work(
        self,
        data: bytes,
        filename: str,
        metadata: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self._call(
            "POST",
            f"{self.endpoints.ingest}/v1/works",
            files={"file": (filename, data)},
            data={"metadata": json.dumps(metadata)},
            headers=headers,
        )
        return str(body["work_id"])

    def work(self, work_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.endpoints.ingest}/v1/works/{work_id}"))

    def wait_work(self, work_id: str, timeout_s: float = 120) -> dict[str, Any]:
        return self._wait(lambda: self.work(work_id), lambda w: w["status"] != "pending", timeout_s)

    # -- uploads ------------------------------------------------------------------------------
    def submit_upload(
        self,
        data: bytes,
        filename: str,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        form = {"metadata": json.dumps(metadata)} if metadata else {}
        body = self._call(
            "POST",
            f"{self.endpoints.ingest}/v1/uploads",
            files={"file": (filename, data)},
            data=form,
            headers=headers,
        )
        return str(body["upload_id"])

    def upload(self, upload_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.endpoints.ingest}/v1/uploads/{upload_id}"))

    def wait_upload(
        self, upload_id: str, timeout_s: float = 120, *, published_directly: bool = False
    ) -> dict[str, Any]:
        """Until the upload is final: no_match/failed, or matched with all its reports written.

        An upload published straight to Kafka is unknown to the API (404) until ingest has
        read its event; ``published_directly`` waits through that instead of failing.
        """

        def done(u: dict[str, Any]) -> bool:
            if u["status"] == "unknown":
                return False
            if u["status"] == "failed":
                return True
            expected = len(u["matches"])
            # An upload declaring AI generation, with no registered AI output among its
            # matches, also gets an attribution report from its own provenance.
            if (u.get("provenance") or {}).get("ai_generated") and not any(
                m["kind"] == "ai_output" for m in u["matches"]
            ):
                expected += 1
            return u["status"] in ("matched", "no_match") and len(u.get("reports", [])) >= expected

        def fetch() -> dict[str, Any]:
            try:
                return self.upload(upload_id)
            except ApiFailure as exc:
                if published_directly and exc.status == 404:
                    return {"status": "unknown"}
                raise

        upload = self._wait(fetch, done, timeout_s)
        if upload["status"] == "unknown":
            raise TimeoutError(f"upload {upload_id} never became visible")
        return upload

    def uploads(self, **params: Any) -> dict[str, Any]:
        """``GET /v1/uploads``: ``ids=[...]`` (a list is joined), or ``since``/``cursor``."""
        if isinstance(params.get("ids"), list | tuple):
            params["ids"] = ",".join(params["ids"])
        return dict(self._call("GET", f"{self.endpoints.ingest}/v1/uploads", params=params))

    # -- webhooks -----------------------------------------------------------------------------
    def create_webhook(self, url: str, **fields: Any) -> dict[str, Any]:
        body = {"url": url, **fields}
        return dict(self._call("POST", f"{self.endpoints.delivery}/v1/webhooks", json=body))

    def webhooks(self) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{self.endpoints.delivery}/v1/webhooks")["webhooks"])

    def delete_webhook(self, webhook_id: str) -> None:
        response = self._http.delete(f"{self.endpoints.delivery}/v1/webhooks/{webhook_id}")
        if response.status_code >= 400:
            raise ApiFailure(response)

    def rotate_webhook_secret(self, webhook_id: str, **fields: Any) -> dict[str, Any]:
        url = f"{self.endpoints.delivery}/v1/webhooks/{webhook_id}/rotate-secret"
        return dict(self._call("POST", url, json=fields))

    def webhook_deliveries(self, webhook_id: str, **params: Any) -> dict[str, Any]:
        url = f"{self.endpoints.delivery}/v1/webhooks/{webhook_id}/deliveries"
        return dict(self._call("GET", url, params=params))

    def webhook_delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        url = f"{self.endpoints.delivery}/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"
        return dict(self._call("GET", url))

    def replay_webhook_delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        url = f"{self.endpoints.delivery}/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"
        return dict(self._call("POST", url))

    # -- reports ------------------------------------------------------------------------------
    def reports(self, **params: Any) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.endpoints.report}/v1/reports", params=params))

    def report(self, report_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.endpoints.report}/v1/reports/{report_id}"))

    def report_raw(self, report_id: str, fmt: str = "json") -> httpx.Response:
        return self._http.get(
            f"{self.endpoints.report}/v1/reports/{report_id}", params={"format": fmt}
        )

    @staticmethod
    def _wait(fetch: Any, done: Any, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        while True:
            value = fetch()
            if done(value) or time.monotonic() > deadline:
                return dict(value)
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

"""The services as real processes (``contentmatch serve ...``), for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.infra import REPO, TestInfra

SERVICES = ("ingest", "fingerprint", "match", "report", "delivery")


@dataclass
class Stack:
    infra: TestInfra
    admin_key: str
    base_port: int = 18080
    env_overrides: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port(self, service: str) -> int:
        return self.base_port + 1 + SERVICES.index(service)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    @property
    def env(self) -> dict[str, str]:
        state = self.infra.state_dir
        return {
            **os.environ,
            **self.infra.env,
            "CM_ADMIN_KEY": self.admin_key,
            "CM_INGEST_PORT": str(self.port("ingest")),
            "CM_FINGERPRINT_PORT": str(self.port("fingerprint")),
            "CM_MATCH_PORT": str(self.port("match")),
            "CM_REPORT_PORT": str(self.port("report")),
            "CM_DELIVERY_PORT": str(self.port("delivery")),
            # Webhook receivers in the tests listen on loopback; retries come quickly.
            "CM_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            "CM_WEBHOOK_RETRY_BASE_S": "0.3",
            "CM_WEBHOOK_RETRY_FACTOR": "2",
            "CM_WEBHOOK_RETRY_MAX_DELAY_S": "2",
            "CM_WEBHOOK_TIMEOUT_S": "3",
            "CM_WEBHOOK_RECEIVER_PAUSE_S": "1",
            "CM_WEBHOOK_CACHE_TTL_S": "0.5",
            "CM_REPORT_SIGNING_KEY_FILE": str(state / "keys" / "report-signing.key"),
            "CM_UPLOAD_TOKEN_SECRET_FILE": str(state / "keys" / "upload-token.key"),
            "CM_CONSUMER_RETRY_BACKOFF_S": "0.2",
            # The suite runs on a sharded match (CM_TEST_MATCH_SHARDS=1: one index) whose
            # snapshots are written when asked (tests/e2e/test_shards.py), not on a timer.
            "CM_MATCH_SHARDS": os.environ.get("CM_TEST_MATCH_SHARDS", "2"),
            "CM_MATCH_SNAPSHOT_INTERVAL_S": "86400",
            **self.env_overrides,
        }

    def log_path(self, service: str) -> Path:
        return self.infra.state_dir / "logs" / f"{service}.log"

    def start(self, *services: str) -> None:
        for service in services or SERVICES:
            log = open(self.log_path(service), "ab")  # noqa: SIM115 - owned by the process
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", "contentmatch_shared.cli", "serve", service],
                env={
                    **self.env,
                    **self.infra.kafka_env(f"svc-{service}"),
                    **self.env_overrides,
                },
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A process group of its own: stopping the service stops its workers too.
                start_new_session=True,
            )
        self.wait_ready(*(services or SERVICES))

    def wait_ready(self, *services: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for service in services:
            while True:
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} exited: {self.tail(service)}")
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service} not ready: {self.tail(service)}")
                time.sleep(0.3)

    def stop(self, *services: str, sig: int = signal.SIGTERM) -> None:
        for service in services or tuple(self.procs):
            proc = self.procs.pop(service, None)
            if proc is None:
                continue
            if sig == signal.SIGKILL:
                # kill -9 of a service is the death of its container: every process in it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.send_signal(sig)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # Whatever the service left behind (a pool worker, a decoder) goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def kill(self, *services: str) -> None:
        """``kill -9`` the services (no shutdown: nothing committed, nothing flushed)."""
        self.stop(*services, sig=signal.SIGKILL)

    def restart(self, *services: str) -> None:
        """``kill -9`` and start again, waiting until ready."""
        self.kill(*services)
        self.start(*services)

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.log_path(service)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

"""The real Kafka and S3 the integration and end-to-end tests run against.

Started through the project's own scripts on test ports, with a state directory of their own, so
the tests never touch (or depend on) a dev stack started by ``make up``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from contentmatch_shared.kafka.security import apply_service_acls
from contentmatch_shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "scripts" / "infra"


@dataclass(frozen=True)
class TestInfra:
    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    s3_port: int
    s3_access_key: str = "contentmatch"
    s3_secret_key: str = "contentmatch-test-secret"

    def kafka_password_file(self, principal: str) -> Path:
        """Where kafka.sh generated the principal's password."""
        return self.state_dir / "kafka" / "users" / f"{principal}.password"

    def kafka_env(self, principal: str) -> dict[str, str]:
        """CM_* settings that authenticate as ``principal`` (``admin``, ``svc-<service>``)."""
        return {
            "CM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CM_KAFKA_USERNAME": principal,
            "CM_KAFKA_PASSWORD_FILE": str(self.kafka_password_file(principal)),
        }

    def settings(self, principal: str = "admin") -> Settings:
        """Settings of a client of this infrastructure (the operator's super user by default)."""
        return Settings(
            kafka_bootstrap=f"127.0.0.1:{self.kafka_port}",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_username=principal,
            kafka_password_file=str(self.kafka_password_file(principal)),
            s3_endpoint=f"127.0.0.1:{self.s3_port}",
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
        )

    @property
    def env(self) -> dict[str, str]:
        """Variables for the infra scripts and for clients (CM_* settings, as the operator)."""
        return {
            "CM_STATE_DIR": str(self.state_dir),
            "CM_KAFKA_PORT": str(self.kafka_port),
            "CM_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "CM_S3_PORT": str(self.s3_port),
            "CM_S3_ACCESS_KEY": self.s3_access_key,
            "CM_S3_SECRET_KEY": self.s3_secret_key,
            "CM_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "CM_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}",
            **self.kafka_env("admin"),
        }

    def script(self, name: str, action: str) -> None:
        subprocess.run(
            ["bash", str(INFRA / name), action],
            check=True,
            env={**os.environ, **self.env},
            cwd=REPO,
        )

    def start(self) -> None:
        # A fresh state per session: tests assert on exact contents.
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.script("kafka.sh", "start")
        self.script("s3.sh", "start")
        self.script("kafka.sh", "wait")
        self.script("s3.sh", "wait")
        # The services' principals get their ACLs as `make up` gives them (topics of no prefix).
        asyncio.run(apply_service_acls(self.settings()))

    # name -> (script, pid file name) of each dependency
    DEPENDENCIES = {"kafka": ("kafka.sh", "kafka"), "s3": ("s3.sh", "s3proxy")}

    def pid(self, dependency: str) -> int | None:
        path = self.state_dir / "run" / f"{self.DEPENDENCIES[dependency][1]}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self, dependency: str) -> None:
        """``kill -9`` the dependency's JVM (no shutdown of any kind), and wait until it is gone."""
        pid = self.pid(dependency)
        if pid is None:
            raise RuntimeError(f"{dependency} has no pid file")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def revive(self, dependency: str) -> None:
        """Start a killed dependency again on the same data, and wait until it serves."""
        script = self.DEPENDENCIES[dependency][0]
        self.script(script, "start")
        self.script(script, "wait")

    def stop(self) -> None:
        if self.state_dir.exists():
            for name in ("kafka.sh", "s3.sh"):
                subprocess.run(
                    ["bash", str(INFRA / name), "stop"],
                    env={**os.environ, **self.env},
                    cwd=REPO,
                    check=False,
                )


def _gone(pid: int) -> bool:
    """No such process, or a zombie (dead, not yet reaped: it serves nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def infra_from_env() -> TestInfra:
    return TestInfra(
        state_dir=Path(os.environ.get("CM_TEST_STATE_DIR", REPO / ".state" / "test")),
        kafka_port=int(os.environ.get("CM_TEST_KAFKA_PORT", "19092")),
        kafka_controller_port=int(os.environ.get("CM_TEST_KAFKA_CONTROLLER_PORT", "19093")),
        s3_port=int(os.environ.get("CM_TEST_S3_PORT", "19000")),
    )

"""Every setting of every service, from ``CM_*`` environment variables (listed in the README)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_S3_SECRET = "contentmatch-dev-secret"


class PreviousSigningKey(BaseModel):
    """A report-signing key retired by a rotation: its public half keeps old reports verifiable."""

    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    valid_from: datetime | None = None
    valid_until: datetime  # when it stopped signing (the rotation)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CM_", extra="ignore")

    environment: Literal["development", "production"] = "development"

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""  # lets several stacks (dev, tests) share one broker safely
    topic_partitions: int = 3
    # SASL/SCRAM: the local stack, the tests and Strimzi run with authentication and ACLs.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = ""
    kafka_password_file: str = ""  # read when kafka_password is empty (a mounted secret)

    # S3 (any S3 endpoint: MinIO, S3Proxy, AWS)
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "contentmatch"
    s3_secret_key: str = DEV_S3_SECRET
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    bucket_media: str = "cm-media"
    bucket_state: str = "cm-state"
    bucket_reports: str = "cm-reports"
    # Direct uploads: presigned PUT URLs name this endpoint (the one platforms reach).
    s3_presign_endpoint: str = ""  # empty: s3_endpoint
    upload_url_ttl_s: float = Field(default=900.0, gt=0, le=7 * 24 * 3600)
    upload_token_ttl_s: float = Field(default=3600.0, gt=0)  # publish the event before this
    upload_token_secret: str = ""  # HMAC secret shared by ingest and fingerprint
    upload_token_secret_file: str = ".state/keys/upload-token.key"  # used when the above is empty

    # HTTP ports of the four services
    host: str = "127.0.0.1"
    ingest_port: int = 8081
    fingerprint_port: int = 8082
    match_port: int = 8083
    report_port: int = 8084
    delivery_port: int = 8085

    # Auth
    admin_key: str = ""  # operator key that may create other keys; required outside development
    auth_cache_size: int = Field(default=10_000, ge=1)  # known keys held per process
    auth_cache_ttl_s: float = 15.0  # how long a revocation may take to reach another process
    auth_negative_cache_size: int = Field(default=10_000, ge=1)  # unknown keys held per process
    auth_negative_cache_ttl_s: float = 2.0
    # Failed authentications allowed per client address (then 429 without a lookup)
    auth_failures_per_s: float = 5.0
    auth_failures_burst: int = 50
    key_rotation_grace_s: float = Field(default=300.0, ge=0)  # old secret valid after a rotate
    # Requests per second and burst per key, by role, per process (0 = unlimited)
    rate_limit_per_s: dict[str, float] = Field(
        default_factory=lambda: {
            "operator": 50.0, "rightsholder": 20.0, "platform": 100.0, "enforcement": 20.0
        }
    )  # fmt: skip
    rate_limit_burst: dict[str, int] = Field(
        default_factory=lambda: {
            "operator": 100, "rightsholder": 40, "platform": 200, "enforcement": 40
        }
    )  # fmt: skip
    # Works/uploads a key may submit per UTC day, per process (0 = unlimited)
    media_quota_per_day: dict[str, int] = Field(
        default_factory=lambda: {"rightsholder": 100_000, "platform": 1_000_000}
    )

    # Ingest limits
    max_upload_bytes: int = 200 * 1024 * 1024
    max_json_bytes: int = 64 * 1024  # every request body but the media routes'
    max_metadata_bytes: int = 16 * 1024

    # Dependencies: how long a request may wait for S3 or Kafka before a 503
    s3_connect_timeout_s: float = 2.0
    s3_read_timeout_s: float = 10.0
    s3_retries: int = 2
    kafka_send_timeout_s: float = 10.0
    unavailable_retry_after_s: int = 5
    # Backpressure: ingest refuses new uploads (503 pipeline_backlogged) while the pipeline's
    # consumer groups are this many records behind in all (0: never), re-read every refresh.
    ingest_max_backlog: int = Field(default=500, ge=0)
    ingest_backlog_refresh_s: float = Field(default=1.0, gt=0)
    backlog_retry_after_s: int = Field(default=5, ge=1)

    # Consumers
    consumer_commit_interval_s: float = 1.0
    consumer_max_batch: int = 64
    consumer_max_retries: int = 6
    consumer_retry_backoff_s: float = 0.5
    consumer_retry_backoff_max_s: float = 10.0
    consumer_dlq_limit: int = 100  # consecutive dead-lettered messages that stop a consumer

    # Workers
    cpu_workers: int = Field(default=2, ge=1)
    audio_max_duration_s: float = 2 * 3600.0
    audio_decode_timeout_s: float = 600.0

    # Decoding sandbox (decode_limits.py, decode_sandbox.py): ceilings of every decode of media
    fingerprint_decode_memory_mb: int = Field(default=768, ge=64)  # all its decodes at once
    report_decode_memory_mb: int = Field(default=160, ge=64)  # report's thumbnailer
    decode_job_memory_mb: int = Field(default=512, ge=64)  # one decode; media needing more fails
    decoder_process_memory_mb: int = Field(default=512, ge=128)  # address space of one ffmpeg
    decode_wall_factor: float = Field(default=4.0, ge=1.0)  # deadline = factor x CPU budget
    audio_max_sample_rate: int = 192_000
    audio_max_channels: int = 8
    audio_max_input_samples: int = 3_000_000_000  # rate x channels x seconds decoded at most

    # Provenance (C2PA): the official and interim trust lists ship in contentmatch_shared/data/c2pa;
    # a PEM file of the operator's own anchors adds signers reported as trusted (list "operator").
    c2pa_extra_trust_anchors_file: str = ""

    # Match
    registry_catchup_wait_s: float = 10.0  # how long an upload waits for the registry to catch up
    # Shards (docs/sharding.md): works split by a stable hash of their id; every upload is
    # searched in every shard and the answers merged. None serves every shard, [] none.
    match_shards: int = Field(default=1, ge=1, le=1024)
    match_serve_shards: list[int] | None = None
    match_merger: bool = True  # run the merger of shard answers in this process (shards > 1)
    match_merge_deadline_s: float = Field(default=120.0, gt=0)  # then the upload fails
    # Index snapshots in bucket_state: every N registry records applied to a shard, or every
    # interval when anything changed; a restart loads the latest and replays what follows.
    match_snapshots: bool = True
    match_snapshot_every_records: int = Field(default=5000, ge=1)
    match_snapshot_interval_s: float = Field(default=600.0, gt=0)
    match_snapshots_kept: int = Field(default=2, ge=1)

    # Reports
    report_signing_key: str = ""  # base64 raw Ed25519 private key; dev key generated when empty
    report_signing_key_file: str = ".state/keys/report-signing.key"
    report_signing_key_valid_from: datetime | None = None  # listed with the current key
    # JSON list of PreviousSigningKey: what GET /v1/reports/public-keys lists beside the current key
    report_previous_public_keys: list[PreviousSigningKey] = Field(default_factory=list)

    # Webhooks (delivery service; docs/webhooks.md)
    # Callback URLs on loopback/private/link-local addresses: for tests and development only.
    webhook_allow_private_urls: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)  # one attempt, end to end
    webhook_connect_timeout_s: float = Field(default=3.0, gt=0, le=30)
    webhook_retry_base_s: float = Field(default=10.0, gt=0)  # first retry's delay
    webhook_retry_factor: float = Field(
        default=4.0, ge=1.0
    )  # each next retry waits this much longer
    webhook_retry_max_delay_s: float = Field(default=6 * 3600.0, gt=0)
    webhook_retry_window_s: float = Field(default=3 * 24 * 3600.0, gt=0)  # then the delivery fails
    webhook_max_concurrency_per_receiver: int = Field(default=4, ge=1)  # per process and host
    webhook_receiver_pause_s: float = Field(default=30.0, ge=0)  # after a timeout, defer that host
    webhook_max_per_tenant: int = Field(default=10, ge=1)
    webhook_secret_grace_s: float = Field(default=24 * 3600.0, ge=0)  # old secret signs too
    webhook_cache_ttl_s: float = Field(default=2.0, ge=0)  # how soon a new webhook gets events

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            if self.s3_secret_key == DEV_S3_SECRET:
                raise ValueError("CM_S3_SECRET_KEY must be set in production")
            if not self.admin_key:
                raise ValueError("CM_ADMIN_KEY must be set in production")
            if self.kafka_security_protocol == "PLAINTEXT":
                raise ValueError("CM_KAFKA_SECURITY_PROTOCOL must authenticate in production")
            if self.webhook_allow_private_urls:
                raise ValueError("CM_WEBHOOK_ALLOW_PRIVATE_URLS is for tests and development")
            if self.webhook_retry_window_s < 24 * 3600:
                raise ValueError("CM_WEBHOOK_RETRY_WINDOW_S must be at least a day in production")
        if self.match_serve_shards and not all(
            0 <= s < self.match_shards for s in self.match_serve_shards
        ):
            raise ValueError(
                f"CM_MATCH_SERVE_SHARDS {self.match_serve_shards} must lie in "
                f"0..{self.match_shards - 1} (CM_MATCH_SHARDS={self.match_shards})"
            )
        if self.kafka_security_protocol != "PLAINTEXT" and not self.kafka_username:
            raise ValueError(f"CM_KAFKA_USERNAME must be set with {self.kafka_security_protocol}")
        return self

    def served_shards(self) -> list[int]:
        if self.match_serve_shards is None:
            return list(range(self.match_shards))
        return sorted(set(self.match_serve_shards))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

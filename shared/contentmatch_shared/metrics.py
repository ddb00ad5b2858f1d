"""Every Prometheus metric of the system, declared once.

Names follow Prometheus conventions (base units, ``_total`` for counters); labels never carry ids.
Each service process registers all of them; the ones it does not use simply stay at zero.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# HTTP (RED per route template, never per concrete path)
HTTP_REQUESTS = Counter(
    "cm_http_requests_total", "HTTP requests handled.", ["service", "route", "method", "status"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "cm_http_request_duration_seconds",
    "HTTP request duration.",
    ["service", "route", "method"],
    buckets=_LATENCY_BUCKETS,
)

# Consumers
CONSUMER_RECORDS_CONSUMED = Counter(
    "cm_consumer_records_consumed_total", "Records fetched from Kafka.", ["consumer", "topic"]
)
CONSUMER_RECORDS_PROCESSED = Counter(
    "cm_consumer_records_processed_total", "Records handled successfully.", ["consumer", "topic"]
)
CONSUMER_RECORDS_FAILED = Counter(
    "cm_consumer_records_failed_total",
    "Handler attempts that raised, by failure class: transient, poison or unknown.",
    ["consumer", "topic", "reason"],
)
CONSUMER_RECORDS_DEAD_LETTERED = Counter(
    "cm_consumer_records_dead_lettered_total",
    "Records sent to the dead-letter topic.",
    ["consumer", "topic"],
)
CONSUMER_STOPPED = Gauge(
    "cm_consumer_stopped",
    "1 when the consumer stopped at its dead-letter limit (the service's HTTP API stays up).",
    ["consumer"],
)
CONSUMER_PROCESSING_SECONDS = Histogram(
    "cm_consumer_processing_seconds",
    "Time to handle one record.",
    ["consumer", "topic"],
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "cm_consumer_lag_records",
    "Records behind the partition's high watermark.",
    ["consumer", "topic", "partition"],
)
CONSUMER_LAST_PROCESSED = Gauge(
    "cm_consumer_last_processed_timestamp_seconds",
    "Unix time of the last record handled.",
    ["consumer", "topic"],
)

# Domain
FINGERPRINT_SECONDS = Histogram(
    "cm_fingerprint_duration_seconds",
    "Time to decode and fingerprint one media file.",
    ["media_type"],
    buckets=_LATENCY_BUCKETS,
)
PROVENANCE_SECONDS = Histogram(
    "cm_provenance_duration_seconds",
    "Time to read one media file's provenance (C2PA, metadata, watermarks, identifiers).",
    ["media_type"],
    buckets=_LATENCY_BUCKETS,
)
PROVENANCE_EVIDENCE = Counter(
    "cm_provenance_evidence_total",
    "Pieces of provenance evidence found, by reader source, kind and strength.",
    ["source", "kind", "strength"],
)
# One series per shard a process serves: sum over shards, not over replicas of one shard.
INDEX_ITEMS = Gauge("cm_index_items", "Works in the match index.", ["media_type", "shard"])
INDEX_MEMORY = Gauge(
    "cm_index_memory_bytes", "Memory held by the match index.", ["media_type", "shard"]
)
INDEX_LAST_UPDATE = Gauge(
    "cm_index_last_update_timestamp_seconds",
    "Unix time the index last applied a registry record (its age is time() minus this).",
    ["media_type", "shard"],
)
REGISTRY_CAUGHT_UP = Gauge(
    "cm_registry_caught_up", "1 once the index has read the registry topic to its end."
)
MATCH_QUERY_SECONDS = Histogram(
    "cm_match_query_duration_seconds",
    "Index search time for one upload.",
    ["media_type"],
    buckets=_LATENCY_BUCKETS,
)
SHARD_WORKS = Gauge("cm_shard_works", "Works held by each served shard.", ["shard"])
SHARD_REPLAYED_RECORDS = Counter(
    "cm_shard_replayed_records_total",
    "Registry records applied to a shard since start (after its snapshot, if one was loaded).",
    ["shard"],
)
SNAPSHOTS_WRITTEN = Counter(
    "cm_index_snapshots_written_total", "Index snapshots stored, by shard.", ["shard"]
)
SNAPSHOT_SECONDS = Histogram(
    "cm_index_snapshot_duration_seconds",
    "Time to capture and store (write) or fetch and load (restore) one shard's snapshot.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
SNAPSHOT_BYTES = Gauge("cm_index_snapshot_bytes", "Size of the last snapshot stored.", ["shard"])
SNAPSHOT_RESTORES = Counter(
    "cm_index_snapshot_restores_total",
    "Shard starts by outcome: restored, none (no snapshot yet) or unusable (full replay).",
    ["outcome"],
)
MERGES = Counter(
    "cm_match_merges_total",
    "Uploads the merger decided: merged, shard_missing (deadline passed) or late (a shard's "
    "answer after the decision).",
    ["outcome"],
)
MERGE_WAIT_SECONDS = Histogram(
    "cm_match_merge_wait_seconds",
    "From the first shard's answer to the merged verdict.",
    buckets=_LATENCY_BUCKETS,
)
MATCHES = Counter(
    "cm_matches_total",
    "Uploads matched, by work kind of each match, or outcome no_match.",
    ["kind", "outcome"],
)
PIPELINE_BACKLOG = Gauge(
    "cm_pipeline_backlog_records",
    "Records a pipeline consumer group has not committed on its input topics, as ingest reads it.",
    ["consumer"],
)
PIPELINE_BACKLOG_LIMIT = Gauge(
    "cm_pipeline_backlog_limit_records",
    "Backlog (all pipeline groups together) at which ingest refuses new uploads; 0 = never.",
)
UPLOADS_REFUSED = Counter(
    "cm_uploads_refused_total",
    "Uploads refused before their body was read, by reason (backlog: the pipeline is behind).",
    ["reason"],
)
UPLOAD_VERDICT_SECONDS = Histogram(
    "cm_upload_verdict_seconds",
    "Time from an upload's submission to its match result, recorded by ingest's status consumer.",
    ["outcome"],
    buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)
UPLOADS_RECEIVED = Counter("cm_uploads_received_total", "Uploads accepted.", ["media_type"])
WORKS_RECEIVED = Counter("cm_works_received_total", "Works accepted.", ["media_type", "kind"])
REPORTS_CREATED = Counter("cm_reports_created_total", "Reports stored.", ["kind"])
DECODE_LIMIT_EXCEEDED = Counter(
    "cm_decode_limit_exceeded_total",
    "Decodes of media stopped by a sandbox limit (deadline, cpu, memory, crash) or refused "
    "before decoding because their declared size exceeds the budget (budget).",
    ["service", "limit"],
)

# Webhooks (delivery service)
WEBHOOK_ATTEMPTS = Counter(
    "cm_webhook_attempts_total",
    "Webhook delivery attempts, by outcome: delivered, http_error, timeout, connection_error, "
    "refused (the URL now resolves to a forbidden address), deferred (receiver paused).",
    ["event_type", "outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "cm_webhook_attempt_duration_seconds",
    "Time of one delivery attempt (request and response).",
    buckets=_LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "cm_webhook_deliveries_total",
    "Webhook deliveries finished, by result: delivered, failed (retry window over), cancelled "
    "(webhook deleted).",
    ["event_type", "result"],
)
WEBHOOK_DISPATCH_LAG = Histogram(
    "cm_webhook_dispatch_lag_seconds",
    "From the pipeline event to the first delivery attempt: the service's own delay, whatever "
    "the receiver then does.",
    ["event_type"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
WEBHOOK_RETRIES_SCHEDULED = Counter(
    "cm_webhook_retries_scheduled_total", "Retries written to a delay topic.", ["level"]
)

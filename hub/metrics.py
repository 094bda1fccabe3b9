"""Prometheus metrics of the hub (default registry: one Robyn process, several threads)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

INGEST_READINGS = Counter(
    "edge_hub_ingest_readings",
    "Readings received in sync batches, by outcome (accepted = newly stored).",
    ["result"],
)
INGEST_BATCHES = Counter(
    "edge_hub_ingest_batches", "Sync batches received, by HTTP status.", ["status"]
)
HTTP_REQUESTS = Counter(
    "edge_hub_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "edge_hub_http_request_duration_seconds",
    "Handler time by route template, method and status class (2xx, 4xx, 5xx).",
    ["route", "method", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "edge_hub_rate_limited_requests", "Requests refused with 429 by the per-token rate limit."
)
DATABASE_UNAVAILABLE = Counter(
    "edge_hub_database_unavailable_requests",
    "Requests answered 503 database_unavailable: no writable database answered in time.",
)
READ_BUDGET_REFUSED = Counter(
    "edge_hub_read_budget_refusals",
    "Expensive reads refused with 429, by reason (budget = the token's rows per second "
    "spent; concurrency = max_concurrent_heavy_reads already running).",
    ["reason"],
)
SENSOR_LIMIT_REFUSALS = Counter(
    "edge_hub_sensor_limit_refusals",
    "Sync batches refused (422) because they would create sensors past a limit, by limit "
    "(max_new_sensors_per_batch, max_sensors_per_factory).",
    ["limit"],
)

ANOMALY_DETECTOR_UP = Gauge(
    "edge_hub_anomaly_detector_up",
    "1 when the last call to anomaly-detector succeeded, 0 when it failed or never ran.",
    multiprocess_mode="mostrecent",
)
ANOMALY_DETECTOR_CIRCUIT = Gauge(
    "edge_hub_anomaly_detector_circuit",
    "State of the circuit breaker in front of anomaly-detector: 1 for the current state.",
    ["state"],
    multiprocess_mode="mostrecent",
)
BREAKER_STATES = ("closed", "half_open", "open")
ANOMALY_CALLS = Counter(
    "edge_hub_anomaly_detector_calls",
    "Calls to anomaly-detector by outcome (short_circuit = refused by the open breaker).",
    ["result"],
)
ANOMALY_SCANS = Counter(
    "edge_hub_anomaly_scans",
    "Per-sensor runs of the background anomaly scan, by result.",
    ["result"],
)
ANOMALIES_STORED = Counter(
    "edge_hub_anomalies_stored", "Anomalies the background scan found and stored (new only)."
)


def render() -> tuple[bytes, str]:
    # workers > 1 (hub.supervisor): every worker writes its values to files in one directory,
    # and whichever worker answers /metrics sums them (prometheus_client's multiprocess mode).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# Storage per tier (raw, 1m, 1h), as the retention job last measured it (hub.retention):
# stored in the database, so every hub process answers the same figures.
TIER_ROWS = Gauge(
    "edge_hub_storage_rows",
    "Rows each storage tier holds.",
    ["tier"],
    multiprocess_mode="mostrecent",
)
TIER_BYTES = Gauge(
    "edge_hub_storage_bytes",
    "Bytes each storage tier takes with its indexes (PostgreSQL; SQLite: dbstat when built in).",
    ["tier"],
    multiprocess_mode="mostrecent",
)
TIER_OLDEST = Gauge(
    "edge_hub_storage_oldest_timestamp_seconds",
    "Time of the oldest row of each tier.",
    ["tier"],
    multiprocess_mode="mostrecent",
)
TIER_NEXT_EXPIRY = Gauge(
    "edge_hub_retention_next_expiry_timestamp_seconds",
    "When the oldest row of each tier expires (absent: the tier is kept forever, or empty).",
    ["tier"],
    multiprocess_mode="mostrecent",
)
TIER_MEASURED = Gauge(
    "edge_hub_storage_measured_timestamp_seconds",
    "When the tiers were last measured.",
    multiprocess_mode="mostrecent",
)


READ_DATABASE_LAG = Gauge(
    "edge_hub_read_database_lag_seconds",
    "How far the read database (read_database) is behind its primary, measured at scrape "
    "(NaN: it does not answer; absent: none is set).",
    multiprocess_mode="mostrecent",
)

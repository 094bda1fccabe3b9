"""Prometheus metrics of the hub (default registry: one Robyn process, several threads)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

INGEST_READINGS = Counter(
    "edge_hub_ingest_readings",
    "Readings received in sync batches, by outcome (accepted = newly stored).",
    ["result"],
)
INGEST_BATCHES = Counter(
    "edge_hub_ingest_batches", "Sync batches received, by HTTP status.", ["status"]
)
HTTP_REQUESTS = Counter(
    "edge_hub_http_requests", "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "edge_hub_http_request_duration_seconds", "Handler time by route template.", ["route"]
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST

"""Prometheus metrics of the agent, on a small local listener (``[metrics] listen``).

Two kinds of numbers:

* what the buffer file knows (backlog, oldest unsynced reading, dead letters, dropped, bytes,
  alerts, MQTT state, recovery) is read at scrape time by :class:`BufferCollector`, through
  ``read_status``'s own read-only connection, so a scrape never touches the event loop's
  connection and the numbers are exactly what ``edge-agent status`` shows;
* what only the running process sees (requests, their latency, batch sizes, retries) are
  counters and histograms that the sync updates as it goes (``SYNC_*`` below).

The listener is prometheus-client's threaded HTTP server; it serves ``/metrics`` only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.buffer import read_status
from agent.sparkplug.metrics import SPARKPLUG_METRICS
from shared.netaddr import parse_host_port

log = structlog.get_logger("agent.metrics")

# Not in the default registry: each listener gets its own registry (see serve), so a process
# that runs the agent twice (tests) never registers a collector twice.
SYNC_REQUESTS = Counter(
    "edge_agent_sync_requests",
    "Sync requests to the hub by outcome: ok (2xx), retry (network, 5xx, 429), refused (4xx).",
    ["result"],
    registry=None,
)
SYNC_BATCH_READINGS = Histogram(
    "edge_agent_sync_batch_readings",
    "Readings per batch the hub accepted.",
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000, 50_000),
    registry=None,
)
SYNC_DURATION = Histogram(
    "edge_agent_sync_request_duration_seconds",
    "Time from sending a sync request to the hub's answer (or the failure).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=None,
)
SYNC_RETRIES = Counter(
    "edge_agent_sync_retries", "Sync attempts that failed and were retried.", registry=None
)
SYNC_READINGS = Counter(
    "edge_agent_sync_readings",
    "Readings the hub confirmed (deleted from the buffer).",
    registry=None,
)
LAST_SYNC_SUCCESS = Gauge(
    "edge_agent_last_sync_success_timestamp_seconds",
    "When the hub last answered a sync request with 2xx (epoch seconds; 0 = not yet).",
    registry=None,
)
_PROCESS_METRICS = (
    SYNC_REQUESTS,
    SYNC_BATCH_READINGS,
    SYNC_DURATION,
    SYNC_RETRIES,
    SYNC_READINGS,
    *SPARKPLUG_METRICS,
)


def sync_ok(readings: int) -> None:
    SYNC_REQUESTS.labels("ok").inc()
    SYNC_BATCH_READINGS.observe(readings)
    SYNC_READINGS.inc(readings)
    LAST_SYNC_SUCCESS.set(time.time())


class BufferCollector(Collector):
    """Reads the buffer's numbers at scrape time."""

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        when_full: str,
        messages_received: Callable[[], int] = lambda: 0,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.messages_received = messages_received

    def collect(self) -> Iterator[Metric]:
        try:
            st = read_status(self.path, self.max_bytes, self.when_full)
            stored = _readings_stored(self.path)
        except (OSError, sqlite3.Error) as exc:
            # A scrape must not fail because the file is being swapped (recovery) or locked.
            log.warning("metrics: cannot read the buffer", error=str(exc))
            yield _gauge("edge_agent_buffer_readable", "1 when the buffer file could be read.", 0)
            return
        yield _gauge("edge_agent_buffer_readable", "1 when the buffer file could be read.", 1)
        yield _gauge(
            "edge_agent_backlog_readings", "Readings not yet confirmed by the hub.", st.backlog
        )
        age = st.oldest_unsynced_age_s
        yield _gauge(
            "edge_agent_oldest_unsynced_age_seconds",
            "Age of the oldest reading not yet confirmed by the hub (0 when none).",
            0.0 if age is None else age,
        )
        yield _gauge("edge_agent_buffer_bytes", "Buffer file plus WAL on disk.", st.buffer.bytes)
        yield _gauge("edge_agent_buffer_max_bytes", "The buffer's budget.", self.max_bytes)
        yield _counter(
            "edge_agent_messages_received",
            "MQTT messages this process committed to the buffer or its dead letters "
            "(a message may carry several readings).",
            self.messages_received(),
        )
        yield _counter(
            "edge_agent_readings_stored",
            "Readings ever stored in this buffer (its highest seq).",
            stored,
        )
        yield _counter(
            "edge_agent_dead_letters", "Messages that went to dead letters.", st.dead_letters
        )
        yield _counter(
            "edge_agent_dropped_readings",
            "Readings dropped because the buffer was full (when_full policy).",
            st.dropped,
        )
        yield _gauge("edge_agent_alerts_open", "Threshold alerts open now.", st.alerts.open)
        yield _gauge(
            "edge_agent_alerts_unsynced",
            "Alert changes not yet confirmed by the hub.",
            st.alerts.unsynced,
        )
        yield _gauge(
            "edge_agent_mqtt_connected",
            "1 while subscribed to the broker.",
            int(st.mqtt.connected),
        )
        recovered = st.recovered
        yield _gauge(
            "edge_agent_buffer_recovered_timestamp_seconds",
            "When a damaged buffer file was last salvaged at start (0 = never).",
            recovered.at if recovered else 0.0,
        )
        yield _gauge(
            "edge_agent_buffer_recovered",
            "1 when this buffer was rebuilt from a damaged file at some start.",
            1 if recovered else 0,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _readings_stored(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
    finally:
        db.close()
    return int(row[0]) if row else 0


def build_registry(collector: BufferCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for metric in (*_PROCESS_METRICS, LAST_SYNC_SUCCESS, collector):
        registry.register(metric)
    for std in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(std)
    return registry


class Listener:
    """The HTTP listener; ``close`` stops it."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        host, port = parse_host_port(listen, allow_port_zero=True)
        self.server, self.thread = start_http_server(port, addr=host, registry=registry)
        shown = f"[{host}]" if ":" in host else host
        self.address = f"{shown}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(listen: str, collector: BufferCollector) -> Listener | None:
    """Start the listener on ``listen`` (HOST:PORT); None when disabled or the port is taken.

    A busy port is logged, not fatal: the agent's job is the data, not its metrics.
    """
    if not listen:
        return None
    try:
        listener = Listener(listen, build_registry(collector))
    except OSError as exc:
        log.error("metrics listener not started", listen=listen, error=exc.strerror or str(exc))
        return None
    log.info("metrics listening", url=f"http://{listener.address}/metrics")
    return listener

"""The probes and metrics: ``GET /health/live``, ``/health/ready``, ``/health/startup``,
``/metrics``.

``/health/live``: the process answers. ``/health/ready``: the database answers, and on
PostgreSQL a new session reaches a writable primary within the connect timeout per host (the
503 names every host tried); the anomaly-detector's state is reported beside it, for
information only: the hub serves, degraded, without it. ``/health/startup``, the seeds'
startup probe: 200 once the schema is at this release's version and the app serves, 503
before (a Kubernetes startupProbe holds the liveness and readiness probes back until then).

``edge-hub serve`` migrates before it listens, so a hub that answers has normally migrated;
the probe still asks the database, because another process may hold the migration lock
(several hubs starting at once) or the database may be newer than this release. Once the
schema was seen current it stays so for this process: a schema never moves backwards.
"""

from __future__ import annotations

import importlib
import math
import threading

import msgspec
import structlog

from hub import metrics, retention
from hub.api.http import Ctx, Raw, Route, Services
from hub.errors import ApiError, database_unavailable, error_body
from hub.storage import DatabaseUnavailable, Storage

log = structlog.get_logger("hub.health")


def expected_version(storage: Storage) -> int:
    """The schema version this release's engine migrates to (its module's SCHEMA_VERSION)."""
    module = importlib.import_module(type(storage).__module__)
    return int(module.SCHEMA_VERSION)


class StartupProbe:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._started = False
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, int | None, int]:
        """(started, the database's version or None when unreachable, the expected one)."""
        want = expected_version(self.storage)
        if self._started:
            return True, want, want
        try:
            have: int | None = self.storage.schema_version()
        except Exception as exc:
            log.warning("startup check failed", error=str(exc))
            have = None
        with self._lock:
            self._started = self._started or (have is not None and have >= want)
            return self._started, have, want


def routes(hub: Services) -> list[Route]:
    probe = StartupProbe(hub.storage)

    def h_live(ctx: Ctx) -> Raw:
        """Liveness probe: the process answers."""
        return Raw(200, b'{"status":"ok"}')

    def h_ready(ctx: Ctx) -> Raw:
        """Readiness probe: the database answers. The anomaly-detector's state is reported
        for information only: the hub serves (degraded) without it."""
        try:
            ok = hub.storage.ping()
        except DatabaseUnavailable as lost:
            log.warning("readiness check failed", error=str(lost))
            err = database_unavailable(str(lost), lost.hosts)
            return Raw(503, error_body(err, ctx.request_id), headers=err.headers)
        except Exception as exc:
            log.warning("readiness check failed", error=str(exc))
            ok = False
        if not ok:
            err = ApiError(503, "unavailable", "database is not reachable")
            return Raw(503, error_body(err, ctx.request_id))
        started, have, want = probe.check()
        if not started:
            # A hub started before its database answered migrates in the background.
            err = ApiError(
                503, "unavailable", f"database schema is at version {have}, not yet {want}"
            )
            return Raw(503, error_body(err, ctx.request_id))
        body = {"status": "ready", "anomaly_detector": hub.anomaly.status()}
        return Raw(200, msgspec.json.encode(body))

    def h_metrics(ctx: Ctx) -> Raw:
        """Prometheus metrics."""
        hub.anomaly.status(probe=True)  # refreshes edge_hub_anomaly_detector_up when stale
        circuit = hub.anomaly.breaker.state
        for state in metrics.BREAKER_STATES:
            metrics.ANOMALY_DETECTOR_CIRCUIT.labels(state).set(1 if state == circuit else 0)
        retention.publish(hub.storage)  # storage per tier, next expiry
        if hub.settings.read_database is not None:
            lag = hub.storage.read_lag()
            metrics.READ_DATABASE_LAG.set(math.nan if lag is None else lag)
        body, ctype = metrics.render()
        return Raw(200, body, ctype)

    def h_startup(ctx: Ctx) -> Raw:
        """Startup probe: 200 once the schema is migrated and the app serves, else 503."""
        started, have, want = probe.check()
        if not started:
            why = "database unreachable" if have is None else f"schema at {have} of {want}"
            err = ApiError(503, "starting", f"not started: {why}")
            return Raw(503, error_body(err, ctx.request_id))
        return Raw(200, msgspec.json.encode({"status": "started", "schema_version": want}))

    return [
        Route("GET", "/health/live", None, h_live),
        Route("GET", "/health/ready", None, h_ready),
        Route("GET", "/health/startup", None, h_startup),
        Route("GET", "/metrics", None, h_metrics),
    ]

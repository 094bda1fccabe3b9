"""``GET /sensors/:id/anomalies``: the last readings of a sensor, analysed by the
anomaly-detector (live), or the background scan's stored results (``?stored=true``).

Invariant 6, *degrade, don't fail*: when the detector is down, slow or answering garbage,
this answers a 503 envelope within a second (the client's deadline and breaker, in
``hub.anomaly``) and nothing else in the hub notices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog

from hub.anomaly import (
    METHODS,
    AnomalyClient,
    DetectorRejected,
    DetectorUnavailable,
    Method,
    found_anomalies,
)
from hub.api import readcost
from hub.api.http import API, Ctx, Route, Services, charged
from hub.api.queries import Result, parse_limit, sensor_row
from hub.api.scope import by_id
from hub.auth import READ_ROLES
from hub.errors import ApiError, bad_param
from hub.storage import FoundAnomaly, Storage
from shared.timeutil import to_rfc3339

log = structlog.get_logger("hub.anomaly")

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_THRESHOLD = 2.0
MAX_THRESHOLD = 1e6

UNAVAILABLE = "anomaly_detector_unavailable"


def parse_threshold(params: Mapping[str, str]) -> float:
    raw = params.get("threshold")
    if raw is None or raw.strip() == "":
        return DEFAULT_THRESHOLD
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_THRESHOLD:
        raise bad_param("threshold", f"must be a number from 0 to {MAX_THRESHOLD:g}, got {raw!r}")
    return value


def parse_method(params: Mapping[str, str]) -> Method:
    raw = (params.get("method") or "zscore").strip().lower()
    for method in METHODS:
        if raw == method:
            return method
    raise bad_param("method", f"must be one of {', '.join(METHODS)}, got {params['method']!r}")


def parse_bool(params: Mapping[str, str], name: str) -> bool:
    raw = (params.get(name) or "false").strip().lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise bad_param(name, f"must be true or false, got {params[name]!r}")


def unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        UNAVAILABLE,
        f"anomaly detection is unavailable right now ({reason}); other endpoints keep working. "
        "Stored results of the background scan: add ?stored=true",
    )


def _anomaly_view(a: FoundAnomaly) -> dict[str, Any]:
    return {
        "index": a.index,
        "value": a.value,
        "z_score": a.z_score,
        "reading_id": a.reading_id,
        "ts": a.ts,
        "time": to_rfc3339(a.ts),
    }


def sensor_anomalies(
    storage: Storage, client: AnomalyClient, raw_id: str | None, params: Mapping[str, str]
) -> Result:
    """``GET /sensors/:id/anomalies``: the last ``limit`` readings, in time order, analysed."""
    sensor = sensor_row(storage, raw_id)
    limit = parse_limit(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    threshold = parse_threshold(params)
    method = parse_method(params)
    if parse_bool(params, "stored"):
        return _stored(storage, sensor, limit)
    rows = storage.last_readings(sensor["id"], limit)
    meta: dict[str, Any] = {"source": "live", "threshold": threshold, "method": method}
    if not rows:
        data = {
            "sensor_id": sensor["id"],
            "sensor_name": sensor["name"],
            "analyzed_readings": 0,
            "anomalies_found": 0,
            "statistics": {"mean": None, "std_dev": None, "count": 0},
            "anomalies": [],
        }
        return data, meta
    try:
        detection = client.detect([value for _, _, value in rows], threshold, method)
    except DetectorUnavailable as exc:
        raise unavailable(str(exc)) from None
    except DetectorRejected as exc:
        log.error("anomaly-detector refused our input", sensor_id=sensor["id"], error=str(exc))
        raise ApiError(
            502, "anomaly_detector_error", "anomaly-detector refused the request; see the hub log"
        ) from None
    anomalies = [_anomaly_view(a) for a in found_anomalies(rows, detection)]
    data = {
        "sensor_id": sensor["id"],
        "sensor_name": sensor["name"],
        "analyzed_readings": len(rows),
        "anomalies_found": len(anomalies),
        "statistics": detection.statistics_dict(),
        "anomalies": anomalies,
    }
    return data, meta


def _stored(storage: Storage, sensor: dict[str, Any], limit: int) -> Result:
    scan = storage.anomaly_scan(sensor["id"])
    rows = storage.stored_anomalies(sensor["id"], limit)
    anomalies = [
        {
            "index": r["index"],
            "value": r["value"],
            "z_score": r["z_score"],
            "reading_id": r["reading_id"],
            "ts": r["ts"],
            "time": to_rfc3339(r["ts"]),
            "detected_at": to_rfc3339(r["detected_at"]),
        }
        for r in rows
    ]
    data = {
        "sensor_id": sensor["id"],
        "sensor_name": sensor["name"],
        "analyzed_readings": 0 if scan is None else scan["analyzed"],
        "anomalies_found": len(anomalies),
        "statistics": None if scan is None else scan["statistics"],
        "anomalies": anomalies,
    }
    meta: dict[str, Any] = {"source": "stored", "scanned_at": None}
    if scan is not None:
        meta.update(
            scanned_at=to_rfc3339(scan["scanned_at"]),
            threshold=scan["threshold"],
            method=scan["method"],
        )
    return data, meta


def routes(hub: Services) -> list[Route]:
    def h_anomalies(ctx: Ctx) -> Result:
        """Anomalies in the last N readings (?limit=100&threshold=2.0&method=zscore|mad);
        ?stored=true answers from the background scan. 503 when anomaly-detector is down."""
        return sensor_anomalies(hub.storage, hub.anomaly, ctx.path("id"), ctx.params)

    return [
        Route(
            "GET",
            f"{API}/sensors/:id/anomalies",
            READ_ROLES,
            h_anomalies,
            charged(readcost.anomalies),
            by_id("sensor"),
        )
    ]

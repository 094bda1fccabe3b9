"""The anomaly-detector client (HTTP, a circuit breaker in front) and the anomalies endpoint.

Invariant 6, *degrade, don't fail*: when the detector is down, slow or answering garbage,
``GET /sensors/:id/anomalies`` answers a 503 envelope within a second and nothing else in
the hub notices. Three things bound the cost of a dead service:

* tight timeouts: connect 0.3 s, and one deadline of 0.8 s over the whole call (retry
  included), so a blackholed host cannot hold a handler thread for long;
* one quick retry, for connection errors only (a refused or reset connect is cheap and
  often transient, e.g. a restart); a timeout or a 5xx is not retried, it would only double
  the wait;
* a circuit breaker: after ``failure_threshold`` consecutive failures calls fail at once for
  ``reset_after_s``; then one probe call is let through (half-open) and its outcome closes
  or re-opens the breaker.

Why a synchronous ``httpx.Client``: every hub handler is a plain ``def`` (see
``Hub.endpoint``), which Robyn runs on its worker threads, not on an event loop, so an
``AsyncClient`` would need a loop of its own per call. ``httpx.Client`` is thread-safe and
one shared instance keeps a connection pool to the detector across requests and threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NoReturn

import httpx
import msgspec
import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from hub import metrics
from hub.errors import ApiError, bad_param
from hub.queries import Result, parse_limit, sensor_row
from hub.storage import FoundAnomaly, Storage
from shared.timeutil import to_rfc3339

log = structlog.get_logger("hub.anomaly")

Method = Literal["zscore", "mad"]
METHODS: tuple[Method, ...] = ("zscore", "mad")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_THRESHOLD = 2.0
MAX_THRESHOLD = 1e6

CONNECT_TIMEOUT_S = 0.3
TOTAL_TIMEOUT_S = 0.8
RETRY_WAIT_S = 0.05
# A retry is only worth starting with at least this much of the deadline left.
MIN_ATTEMPT_S = 0.1

UNAVAILABLE = "anomaly_detector_unavailable"


class DetectorUnavailable(Exception):
    """The detector could not answer (down, slow, 5xx, garbage, or the breaker is open)."""


class DetectorRejected(Exception):
    """The detector answered 4xx: it refused the input (a bug on our side, not an outage)."""


# -- circuit breaker ------------------------------------------------------------------------

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure breaker; thread-safe; ``clock`` is injectable for tests."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time may."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "open" or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            # A failed probe re-opens at once; otherwise open after N in a row.
            if self._probing or self._failures >= self.failure_threshold:
                if self._opened_at is None or self._probing:
                    log.warning("anomaly-detector circuit opened", failures=self._failures)
                self._opened_at = self._clock()
            self._probing = False

    @property
    def retry_in_s(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_after_s - (self._clock() - self._opened_at))


# -- client -------------------------------------------------------------------------------


class Statistics(msgspec.Struct):
    mean: float | None = None
    std_dev: float | None = None
    count: int | None = None
    median: float | None = None
    mad: float | None = None


class Anomaly(msgspec.Struct):
    index: int
    value: float
    z_score: float


class Detection(msgspec.Struct):
    statistics: Statistics
    anomalies: list[Anomaly]

    def statistics_dict(self) -> dict[str, Any]:
        stats = msgspec.structs.asdict(self.statistics)
        return {k: v for k, v in stats.items() if v is not None or k in ("mean", "std_dev")}


_detection = msgspec.json.Decoder(Detection)


class AnomalyClient:
    """One per hub, shared by every handler thread and the background worker."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.total_timeout_s = total_timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._client = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(total_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        # Last known health: None until the first call.
        self.up: bool | None = None
        self.last_checked: float | None = None
        self.last_error: str | None = None

    def close(self) -> None:
        self._client.close()

    def _note(self, ok: bool, error: str | None = None) -> None:
        self.up, self.last_checked, self.last_error = ok, time.monotonic(), error
        metrics.ANOMALY_DETECTOR_UP.set(1 if ok else 0)
        metrics.ANOMALY_CALLS.labels("ok" if ok else "error").inc()

    def _send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """One HTTP exchange under the total deadline, retrying a failed connect once."""
        deadline = time.monotonic() + self.total_timeout_s

        def attempt() -> httpx.Response:
            left = deadline - time.monotonic()
            if left < MIN_ATTEMPT_S:
                raise httpx.ConnectTimeout("no time left for another attempt")
            # httpx's timeouts are per phase; clamping every phase to what is left of the
            # deadline makes the whole exchange end by it (give or take one read chunk).
            timeout = httpx.Timeout(left, connect=min(self.connect_timeout_s, left))
            return self._client.request(method, path, json=json, timeout=timeout)

        retrying = Retrying(
            retry=retry_if_exception_type(httpx.ConnectError),
            stop=stop_after_attempt(2),
            wait=wait_fixed(RETRY_WAIT_S),
            reraise=True,
        )
        return retrying(attempt)

    def _call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        if not self.breaker.allow():
            metrics.ANOMALY_CALLS.labels("short_circuit").inc()
            raise DetectorUnavailable(
                f"anomaly-detector marked down after repeated failures; "
                f"retrying in {self.breaker.retry_in_s:.1f}s"
            )
        try:
            response = self._send(method, path, json)
        except httpx.TimeoutException:
            self._fail(f"no answer within {self.total_timeout_s}s")
        except httpx.HTTPError as exc:
            self._fail(f"cannot reach {self.base_url}: {type(exc).__name__}")
        if response.status_code >= 500:
            self._fail(f"anomaly-detector answered {response.status_code}")
        return response

    def _fail(self, reason: str) -> NoReturn:
        self.breaker.failure()
        self._note(False, reason)
        log.warning("anomaly-detector call failed", reason=reason)
        raise DetectorUnavailable(reason)

    def detect(self, values: Sequence[float], threshold: float, method: Method) -> Detection:
        response = self._call(
            "POST", "/detect", {"values": list(values), "threshold": threshold, "method": method}
        )
        if response.status_code >= 400:
            # It answered, so it is up; our input was refused.
            self.breaker.success()
            self._note(True)
            raise DetectorRejected(f"{response.status_code}: {response.text[:200]}")
        try:
            detection = _detection.decode(response.content)
        except msgspec.DecodeError as exc:
            self._fail(f"unexpected answer from anomaly-detector: {exc}")
        self.breaker.success()
        self._note(True)
        return detection

    def health(self) -> bool:
        try:
            response = self._call("GET", "/health")
        except DetectorUnavailable:
            return False
        ok = response.status_code == 200
        if ok:
            self.breaker.success()
            self._note(True)
        else:
            self.breaker.failure()
            self._note(False, f"/health answered {response.status_code}")
        return ok

    def status(self, probe: bool = False, max_age_s: float = 15.0) -> dict[str, Any]:
        """Last known state, for /metrics and /health/ready.

        ``probe``: check /health first when the last observation is older than ``max_age_s``
        (bounded by the same deadline and breaker as every call).
        """
        stale = self.last_checked is None or time.monotonic() - self.last_checked > max_age_s
        if probe and stale and self.breaker.state != "open":
            self.health()
        state = {None: "unknown", True: "up", False: "down"}[self.up]
        metrics.ANOMALY_DETECTOR_UP.set(1 if self.up else 0)
        return {
            "status": state,
            "circuit": self.breaker.state,
            "url": self.base_url,
            "error": None if self.up else self.last_error,
        }


# -- the endpoint -------------------------------------------------------------------------


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


def found_anomalies(
    rows: Sequence[tuple[int, float, float]], detection: Detection
) -> list[FoundAnomaly]:
    """Tie the detector's anomalies (by index into the values sent) to their readings."""
    found = []
    for a in detection.anomalies:
        if 0 <= a.index < len(rows):
            rid, ts, _ = rows[a.index]
            found.append(FoundAnomaly(rid, ts, a.value, a.z_score, a.index))
    return found


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

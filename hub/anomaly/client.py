"""HTTP calls to the anomaly-detector under tight deadlines (see the package's doc).

Why a synchronous ``httpx.Client``: every hub handler is a plain ``def``, which Robyn runs on
its worker threads, not on an event loop, so an ``AsyncClient`` would need a loop of its own
per call. ``httpx.Client`` is thread-safe and one shared instance keeps a connection pool to
the detector across requests and threads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

import httpx
import msgspec
import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from hub import metrics
from hub.anomaly.breaker import CircuitBreaker
from hub.storage import FoundAnomaly

log = structlog.get_logger("hub.anomaly")

Method = Literal["zscore", "mad"]
METHODS: tuple[Method, ...] = ("zscore", "mad")

CONNECT_TIMEOUT_S = 0.3
TOTAL_TIMEOUT_S = 0.8
RETRY_WAIT_S = 0.05
# A retry is only worth starting with at least this much of the deadline left.
MIN_ATTEMPT_S = 0.1


class DetectorUnavailable(Exception):
    """The detector could not answer (down, slow, 5xx, garbage, or the breaker is open)."""


class DetectorRejected(Exception):
    """The detector answered 4xx: it refused the input (a bug on our side, not an outage)."""


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

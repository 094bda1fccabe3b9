"""The anomaly-detector client: HTTP to the Rust service, with a circuit breaker in front.

``client`` makes the calls, ``breaker`` decides whether a call may go out; the endpoint
that answers ``GET /sensors/:id/anomalies`` is ``hub.api.anomalies``, and the background
scan is ``hub.worker``.

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

from hub.anomaly.breaker import BreakerState, CircuitBreaker
from hub.anomaly.client import (
    METHODS,
    AnomalyClient,
    Detection,
    DetectorRejected,
    DetectorUnavailable,
    Method,
    found_anomalies,
)

__all__ = [
    "METHODS",
    "AnomalyClient",
    "BreakerState",
    "CircuitBreaker",
    "Detection",
    "DetectorRejected",
    "DetectorUnavailable",
    "Method",
    "found_anomalies",
]

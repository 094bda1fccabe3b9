"""A consecutive-failure circuit breaker in front of the anomaly-detector.

After ``failure_threshold`` consecutive failures calls fail at once for ``reset_after_s``;
then one probe call is let through (half-open) and its outcome closes or re-opens it, so a
dead detector costs the hub nothing per request while it is down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

import structlog

log = structlog.get_logger("hub.anomaly")

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

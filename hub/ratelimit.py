"""Per-token rate limit: a token bucket per bearer token, refilled continuously.

Keyed by the token's row id (after authentication), so a caller cannot dodge the limit by
varying anything but its credentials, and unauthenticated noise never evicts a real bucket.
Thread-safe: Robyn runs handlers on several worker threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Buckets idle this long are full again anyway; dropping them bounds memory by active tokens.
_IDLE_S = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: int) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
                bucket.at = now
            if now - self._last_sweep > _IDLE_S:
                self._sweep(now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, b in self._buckets.items() if now - b.at > _IDLE_S]:
            del self._buckets[key]


def retry_after_s(wait_s: float) -> int:
    # Retry-After takes whole seconds; rounding down to 0 would invite an immediate retry.
    return max(1, math.ceil(wait_s))

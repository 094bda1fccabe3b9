"""Per-token rate limits: a token bucket per bearer token, refilled continuously, for
requests (RateLimiter) and for the rows of expensive reads (ReadBudget).

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
        return self.take(key, 1.0)

    def take(self, key: int, amount: float) -> float:
        """Take ``amount`` (at most the burst) from ``key``'s bucket: 0.0 when there was
        enough, else the seconds until there will be (nothing is taken then)."""
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
            if bucket.tokens >= amount:
                bucket.tokens -= amount
                return 0.0
            return (amount - bucket.tokens) / self.rate

    def give_back(self, key: int, amount: float) -> None:
        """Return what :meth:`take` took for a request that was refused later on."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.tokens = min(self.burst, bucket.tokens + amount)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, b in self._buckets.items() if now - b.at > _IDLE_S]:
            del self._buckets[key]


def retry_after_s(wait_s: float) -> int:
    # Retry-After takes whole seconds; rounding down to 0 would invite an immediate retry.
    return max(1, math.ceil(wait_s))


class ReadBudget:
    """What expensive reads may cost: rows per token per second, and how many run at once.

    A read that may answer more than ``heavy_rows`` rows (readings, series with a large
    limit) first takes its worst-case row count from its token's bucket (refilled at
    ``rows_per_s`` up to ``burst_rows``), then one of ``max_concurrent`` slots shared by all
    tokens. Building and encoding 100,000 rows holds the interpreter for a good part of a
    second; without this, three or four such reads at once stretched ingest latency from
    milliseconds to over a second. Refusals are 429 with Retry-After; small reads never
    wait here.
    """

    def __init__(
        self,
        rows_per_s: float,
        burst_rows: int,
        max_concurrent: int,
        heavy_rows: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heavy_rows = heavy_rows
        self.max_concurrent = max_concurrent
        self._rows = RateLimiter(rows_per_s, burst_rows, clock)
        self._slots = threading.BoundedSemaphore(max_concurrent)

    @property
    def enabled(self) -> bool:
        return self._rows.enabled

    def is_heavy(self, rows: int) -> bool:
        return self.enabled and rows > self.heavy_rows

    def acquire(self, key: int, rows: int) -> tuple[str, float] | None:
        """Admit a read of at most ``rows`` rows for token ``key``: None when admitted (then
        call :meth:`release`), else (reason, seconds to wait) with reason "budget" or
        "concurrency"."""
        wait = self._rows.take(key, min(float(rows), self._rows.burst))
        if wait > 0:
            return "budget", wait
        if not self._slots.acquire(blocking=False):
            self._rows.give_back(key, min(float(rows), self._rows.burst))
            return "concurrency", 1.0
        return None

    def release(self) -> None:
        self._slots.release()

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    def debit(self, key: int, amount: float) -> None:
        """Take ``amount`` whatever is left, down to one burst below empty: for rows a read
        found only once it ran. The token's next charged read waits for the refill."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
                bucket.at = now
            bucket.tokens = max(-self.burst, bucket.tokens - amount)

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

    A read that may answer more than ``heavy_rows`` rows (hub.api.readcost says what each route
    may answer) first takes its worst-case row count from its token's bucket (refilled at
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

    @property
    def burst_rows(self) -> int:
        return int(self._rows.burst)

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

    def take_page(self, key: int, rows: int, heavy: bool) -> tuple[str, float] | None:
        """Like :meth:`acquire` for one page of a longer read: its rows are always charged
        (the whole read is large), a slot only when the page itself is heavy."""
        if heavy:
            return self.acquire(key, rows)
        wait = self._rows.take(key, min(float(rows), self._rows.burst))
        return None if wait <= 0 else ("budget", wait)

    def debit(self, key: int, rows: int) -> None:
        self._rows.debit(key, float(rows))

    def give_back(self, key: int, rows: int) -> None:
        if rows > 0:
            self._rows.give_back(key, float(rows))

    def release(self) -> None:
        self._slots.release()


class ReadCharge:
    """One request's account with the read budget, for rows counted while it runs: the
    pages of a streamed export (:meth:`page`) and rows found only at the end (:meth:`debit`)."""

    def __init__(
        self, budget: ReadBudget, key: int, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.budget = budget
        self.key = key
        self._sleep = sleep

    @contextmanager
    def page(self, rows: int, *, wait: bool) -> Iterator[Page]:
        """Charge ``rows`` for the block inside, which sets ``Page.read``; a heavy page also
        holds a concurrent-read slot. ``wait``: pause until the token's budget and a slot
        allow it (a stream whose headers are sent can only slow down); else refuse as the
        up-front charge does."""
        heavy = self.budget.is_heavy(rows)
        while True:
            refused = self.budget.take_page(self.key, rows, heavy)
            if refused is None:
                break
            reason, seconds = refused
            if not wait:
                raise PageRefused(reason, seconds)
            self._sleep(min(seconds, _MAX_PAUSE_S))
        page = Page(rows)
        try:
            yield page
        finally:
            if heavy:
                self.budget.release()
            # A short page (the last) gives back what it did not read.
            self.budget.give_back(self.key, min(rows, self.budget.burst_rows) - page.read)

    def debit(self, rows: int) -> None:
        self.budget.debit(self.key, rows)


@dataclass(slots=True)
class Page:
    rows: int
    read: int = 0


# A paused stream looks again at least this often (a slot may free up before the refill).
_MAX_PAUSE_S = 1.0


class PageRefused(Exception):
    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s

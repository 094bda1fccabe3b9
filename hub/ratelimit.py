"""Per-token rate limits: a token bucket per bearer token, refilled continuously, for
requests (RateLimiter) and for the rows of expensive reads (ReadBudget).

Keyed by the token's row id (after authentication), so a caller cannot dodge the limit by
varying anything but its credentials, and unauthenticated noise never evicts a real bucket.
Thread-safe: Robyn runs handlers on several worker threads.

Shared by every process and host: the bucket itself is a row in the hub's database
(hub.storage.quotas), and each process leases tokens from it a chunk at a time (a twentieth
of the burst, at least one), so most requests are decided from memory: only about one in a
chunk visits the database, however slowly the token's requests come.

The bound, over any T seconds, with P processes (workers on every host) together: a token
gets at most ``burst + rate * T + P * chunk``: what one process would allow, plus what the
others leased before those T seconds and spend within them (hosts' clocks apart by d
seconds may add ``rate * d``). The other way, the same: a caller spread over P processes
may meet its 429 up to ``P * chunk`` tokens early, while other processes hold what they
leased. A process that has just seen the shared bucket too low refuses from memory until
its refill (Retry-After) would let the request through.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

# Processes' buckets idle this long are full again anyway; dropping them bounds memory by
# active tokens (an unspent lease dropped with one is at most a chunk).
_IDLE_S = 600.0


@dataclass(frozen=True, slots=True)
class Draw:
    """What one visit asks of a shared bucket: hand back ``returned`` (negative: a debt,
    down to one burst below empty), then take up to ``want`` if at least ``need`` are
    there; the bucket refills at ``rate`` up to ``burst``; ``at`` is the visitor's clock."""

    returned: float
    need: float
    want: float
    rate: float
    burst: float
    at: float


def settle(tokens: float, seen: float, draw: Draw) -> tuple[float | None, float, float]:
    """One visit to a shared bucket that had ``tokens`` at ``seen``, as ``draw`` asks.
    Returns (what was taken, or None when not even ``draw.need`` was there; the tokens
    left; the bucket's clock from now on)."""
    # A clock that went back (or another host's, slightly behind) refills nothing.
    tokens = min(draw.burst, tokens + max(0.0, draw.at - seen) * draw.rate)
    tokens = max(-draw.burst, min(draw.burst, tokens + draw.returned))
    seen = max(draw.at, seen)
    if tokens < draw.need:
        return None, tokens, seen
    taken = max(0.0, min(draw.want, tokens))
    return taken, tokens - taken, seen


class Ledger(Protocol):
    """Where the buckets are: the hub's database (hub.storage.quotas), shared by every
    process and host, or one process's memory (:class:`LocalLedger`)."""

    def lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]: ...

    def sweep(self, at: float) -> int: ...


class LocalLedger:
    """Buckets in this process's memory: for tools and tests without a database."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]:
        with self._lock:
            tokens, seen = self._rows.get((kind, key), (draw.burst, draw.at))
            taken, left, seen = settle(tokens, seen, draw)
            self._rows[kind, key] = (left, seen)
        return taken, left

    def sweep(self, at: float) -> int:
        with self._lock:
            idle = [k for k, (_, seen) in self._rows.items() if at - seen > _IDLE_S]
            for k in idle:
                del self._rows[k]
        return len(idle)


@dataclass(slots=True)
class _Lease:
    # Tokens taken from the shared bucket and not spent yet (negative: rows read beyond
    # them, owed to the shared bucket at the next visit).
    held: float = 0.0
    # The last visit to the shared bucket (the idle sweep's clock).
    leased_at: float = -math.inf
    # The shared bucket's tokens as the last visit left them, and when.
    seen: float = 0.0
    seen_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
        kind: str = "requests",
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        # Wall time: the shared rows are refilled by the clocks of several processes.
        self._clock = clock
        self._ledger: Ledger = ledger if ledger is not None else LocalLedger()
        self._kind = kind
        self.chunk = max(1.0, self.burst / 20)
        self._leases: dict[int, _Lease] = {}
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
        lease = self._lease(key, now)
        with lease.lock:
            if lease.held >= amount:
                lease.held -= amount
                return 0.0
            # The most the shared bucket can hold now (other processes only take from it,
            # bar their leases handed back): too little, and the database is not asked.
            most = min(self.burst, lease.seen + (now - lease.seen_at) * self.rate)
            if most + max(0.0, lease.held) < amount:
                return (amount - most - max(0.0, lease.held)) / self.rate
            taken = self._visit(key, lease, now, need=amount, want=max(amount, self.chunk))
            if taken is None:
                return (amount - lease.seen) / self.rate
            lease.held = taken - amount
            return 0.0

    def debit(self, key: int, amount: float) -> None:
        """Take ``amount`` whatever is left, down to one burst below empty: for rows a read
        found only once it ran. The token's next charged read waits for the refill."""
        if not self.enabled:
            return
        now = self._clock()
        lease = self._lease(key, now)
        with lease.lock:
            lease.held -= amount
            if lease.held < 0:
                # Owed at once: the other processes must see it before their next lease.
                self._visit(key, lease, now, need=-math.inf, want=0.0)

    def give_back(self, key: int, amount: float) -> None:
        """Return what :meth:`take` took for a request that was refused later on."""
        with self._lock:
            lease = self._leases.get(key)
        if lease is not None:
            with lease.lock:
                lease.held += amount

    def _visit(
        self, key: int, lease: _Lease, now: float, *, need: float, want: float
    ) -> float | None:
        """Hand back what ``lease`` holds and take what the shared bucket gives."""
        taken, left = self._ledger.lease(
            self._kind, key, Draw(lease.held, need, want, self.rate, self.burst, now)
        )
        lease.held = 0.0 if taken is None else taken
        lease.leased_at = now
        lease.seen, lease.seen_at = left, now
        return taken

    def _lease(self, key: int, now: float) -> _Lease:
        with self._lock:
            sweep = now - self._last_sweep > _IDLE_S
            if sweep:
                self._last_sweep = now
                for k in [k for k, v in self._leases.items() if now - v.leased_at > _IDLE_S]:
                    del self._leases[k]
            lease = self._leases.get(key)
            if lease is None:
                lease = self._leases[key] = _Lease(leased_at=now)
        if sweep:
            self._ledger.sweep(now)
        return lease


def retry_after_s(wait_s: float) -> int:
    # Retry-After takes whole seconds; rounding down to 0 would invite an immediate retry.
    return max(1, math.ceil(wait_s))


class ReadBudget:
    """What expensive reads may cost: rows per token per second, and how many run at once.

    A read that may answer more than ``heavy_rows`` rows (hub.api.readcost says what each route
    may answer) first takes its worst-case row count from its token's bucket (refilled at
    ``rows_per_s`` up to ``burst_rows``, shared by every host), then one of
    ``max_concurrent`` slots shared by all tokens of this process (the slots guard its own
    interpreter). Building and encoding 100,000 rows holds the interpreter for a good part
    of a second; without this, three or four such reads at once stretched ingest latency
    from milliseconds to over a second. Refusals are 429 with Retry-After; small reads
    never wait here.
    """

    def __init__(
        self,
        rows_per_s: float,
        burst_rows: int,
        max_concurrent: int,
        heavy_rows: int,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        self.heavy_rows = heavy_rows
        self.max_concurrent = max_concurrent
        self._rows = RateLimiter(rows_per_s, burst_rows, clock, ledger, "read_rows")
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

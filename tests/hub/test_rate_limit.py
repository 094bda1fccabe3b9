"""The per-token rate limit: the bucket itself, and 429 + Retry-After from a real hub."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.stack import Agent, Broker, Hub, stopping, wait_for
from hub.config import HubSettings
from hub.ratelimit import (
    Draw,
    Ledger,
    LocalLedger,
    RateLimiter,
    ReadBudget,
    retry_after_s,
    settle,
)
from hub.storage import open_storage, quotas
from tests.agent.conftest import Publisher
from tests.hub.conftest import HubProcess, start_hub, token


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(1) == pytest.approx(0.5)
    assert limiter.acquire(2) == 0.0  # another token has its own bucket
    clock.now += 0.5
    assert limiter.acquire(1) == 0.0
    assert limiter.acquire(1) > 0
    clock.now += 60  # refills to the burst, never beyond it
    assert [limiter.acquire(1) for _ in range(4)][-1] > 0


class CountingLedger:
    """A ledger that counts its visits: what would be database round trips."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.visits = 0

    def lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]:
        self.visits += 1
        return self.inner.lease(kind, key, draw)

    def sweep(self, at: float) -> int:
        return self.inner.sweep(at)


def test_processes_sharing_a_ledger_allow_no_more_than_one_bucket() -> None:
    """Three processes' limiters over one shared ledger, one token hammering them in turn:
    over the whole run they allow at most burst + rate * T, as one process would, and at
    most one chunk per process fewer."""
    clock = Clock()
    ledger = CountingLedger(LocalLedger())
    rate, burst = 5.0, 200
    limiters = [RateLimiter(rate, burst, clock, ledger) for _ in range(3)]
    start, allowed = clock.now, 0
    for i in range(3000):
        allowed += limiters[i % 3].acquire(7) == 0.0
        clock.now += 0.004
    elapsed = clock.now - start
    chunk = limiters[0].chunk
    assert chunk == 10
    assert burst + rate * elapsed - 3 * chunk <= allowed <= burst + rate * elapsed
    # Alone, each would have let through a burst of its own.
    assert allowed < 2 * burst


def test_a_lease_spares_the_ledger_most_requests() -> None:
    """One visit to the shared bucket per chunk of requests, however slowly they come."""
    clock = Clock()
    ledger = CountingLedger(LocalLedger())
    limiter = RateLimiter(100.0, 200, clock, ledger)
    for _ in range(100):
        assert limiter.acquire(1) == 0.0
        clock.now += 1.0  # a gateway syncing once a second
    assert limiter.chunk == 10
    assert ledger.visits == 100 / limiter.chunk


def test_a_debt_reaches_the_shared_bucket_at_once() -> None:
    """Rows a read found only once it ran are owed at once: another process's next heavy
    read waits for the refill."""
    clock = Clock()
    ledger = LocalLedger()
    here, there = (ReadBudget(100.0, 1000, 1, 10, clock, ledger) for _ in range(2))
    assert here.acquire(3, 500) is None
    here.release()
    here.debit(3, 2000)
    refused = there.acquire(3, 50)
    assert refused is not None and refused[0] == "budget"
    # One burst below empty at most: 1000 / 100 s to empty, then 0.5 s for 50 rows.
    assert refused[1] == pytest.approx(10.5)


def test_the_database_ledger_is_one_bucket_for_every_storage(database_url: str) -> None:
    """Two storages on one database (two processes, or two hosts) draw on the same row."""
    first, second = open_storage(database_url), open_storage(database_url)
    try:
        first.migrate()

        def draw(returned: float, need: float, want: float, at: float) -> Draw:
            return Draw(returned, need, want, rate=1.0, burst=10.0, at=at)

        # A new bucket starts full; what one takes, the other no longer finds.
        assert first.quotas.lease("requests", 5, draw(0, 1, 4, 100)) == (4.0, 6.0)
        assert second.quotas.lease("requests", 5, draw(0, 7, 7, 100)) == (None, 6.0)
        # Handed back and refilled (2 s), never beyond the burst.
        taken, left = second.quotas.lease("requests", 5, draw(4, 1, 1, 102))
        assert (taken, left) == (1.0, 9.0)
        # A debt goes no lower than one burst below empty; other kinds and keys are apart.
        assert first.quotas.lease("requests", 5, draw(-50, -1e9, 0, 102))[1] == -10.0
        assert first.quotas.lease("read_rows", 5, draw(0, 1, 1, 102))[0]
        assert first.quotas.sweep(102 + 7200) == 2
    finally:
        first.close()
        second.close()


def test_a_visit_that_races_another_is_made_again_on_what_that_one_left(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's visit between this one's read of the row and its write: the write
    finds the row changed, and the visit is settled again on what the other left. A visit
    that loses every time locks the row instead."""
    first, second = open_storage(database_url), open_storage(database_url)
    try:
        first.migrate()

        def draw(returned: float, need: float, want: float, at: float) -> Draw:
            return Draw(returned, need, want, rate=1.0, burst=10.0, at=at)

        races: list[Draw] = []  # the other process's visits, one in each window of the first's
        racing: list[bool] = []

        def settle_raced(tokens: float, seen: float, d: Draw) -> tuple[float | None, float, float]:
            if races and not racing:
                racing.append(True)  # the other's own visit is not raced
                second.quotas.lease("requests", 5, races.pop(0))
                racing.clear()
            return settle(tokens, seen, d)

        monkeypatch.setattr(quotas, "settle", settle_raced)
        locked: list[Draw] = []
        unlocked = first.quotas._locked_lease

        def locked_lease(kind: str, key: int, d: Draw) -> tuple[float | None, float]:
            locked.append(d)
            return unlocked(kind, key, d)

        monkeypatch.setattr(first.quotas, "_locked_lease", locked_lease)

        # A new bucket, made by the other visit after this one found none: 10 - 1 - 4.
        races[:] = [draw(0, 1, 1, 100)]
        assert first.quotas.lease("requests", 5, draw(0, 1, 4, 100)) == (4.0, 5.0)
        # A bucket both had seen: 5 - 1 - 2.
        races[:] = [draw(0, 1, 1, 100)]
        assert first.quotas.lease("requests", 5, draw(0, 1, 2, 100)) == (2.0, 2.0)
        assert not locked and not races
        # Lost every time (each race a second later: 1 s refilled, 0.5 taken), then locked:
        # 2 + 1.5 - 2.
        races[:] = [draw(0, 0, 0.5, 100 + s) for s in (1, 2, 3)]
        assert first.quotas.lease("requests", 5, draw(0, 1, 2, 103)) == (2.0, 1.5)
        assert len(locked) == 1 and not races
        assert second.quotas.lease("requests", 5, draw(0, 0, 0, 103)) == (0.0, 1.5)
    finally:
        first.close()
        second.close()


def test_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter(rate_per_s=0, burst=1)
    assert all(limiter.acquire(1) == 0.0 for _ in range(1000))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_s(0.01) == 1
    assert retry_after_s(1.2) == 2


def test_defaults_leave_room_for_a_draining_gateway() -> None:
    # A drain sends batches back to back; the hub stores at most a few tens per second.
    fields = HubSettings.model_fields
    assert fields["rate_limit_per_s"].default >= 50 and fields["rate_limit_burst"].default >= 100


@pytest.fixture(scope="module")
def limited_hub(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[HubProcess]:
    # 0.2/s: the bucket cannot refill between the requests of this test.
    server = start_hub(
        tmp_path_factory.mktemp("limited-hub"),
        database=hub_database,
        rate_limit_per_s=0.2,
        rate_limit_burst=3,
    )
    server.tokens = {
        "read": token(server.config, "token", "add", "--role", "read"),
        "other": token(server.config, "token", "add", "--role", "read"),
    }
    yield server
    assert server.stop() == 0


def test_429_with_envelope_and_retry_after(limited_hub: HubProcess) -> None:
    with limited_hub.client("read") as c:
        answers = [c.get("/api/v1/factories") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["meta"]["request_id"] == refused.headers["x-request-id"]
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    # The limit is per token, and probes/metrics are not behind it.
    with limited_hub.client("other") as c:
        assert c.get("/api/v1/factories").status_code == 200
    assert httpx.get(f"{limited_hub.url}/health/live").status_code == 200
    metrics = httpx.get(f"{limited_hub.url}/metrics").text
    assert _sample(metrics, "edge_hub_rate_limited_requests_total") == 1


@pytest.fixture(scope="module")
def two_hubs(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[tuple[HubProcess, HubProcess]]:
    # Two processes on one database, as two hosts (or workers) are. One token a second
    # refills next to nothing while the test runs; a chunk is 100 / 20 = 5 tokens.
    settings = {"rate_limit_per_s": 1.0, "rate_limit_burst": 100}
    first = start_hub(tmp_path_factory.mktemp("hub-a"), database=hub_database, **settings)
    try:
        second = start_hub(tmp_path_factory.mktemp("hub-b"), database=hub_database, **settings)
    except BaseException:
        first.stop()
        raise
    first.tokens["shared"] = second.tokens["shared"] = token(
        first.config, "token", "add", "--role", "read"
    )
    yield first, second
    assert first.stop() == 0
    assert second.stop() == 0


def test_one_token_on_two_processes_gets_one_bucket(
    two_hubs: tuple[HubProcess, HubProcess],
) -> None:
    """One token hammering two hub processes in turn is allowed what one bucket allows:
    at most burst + rate * T over the run, and at most one chunk per process fewer."""
    clients = [hub.client("shared") for hub in two_hubs]
    try:
        started = time.monotonic()
        statuses = [clients[i % 2].get("/api/v1/factories").status_code for i in range(300)]
        elapsed = time.monotonic() - started
    finally:
        for c in clients:
            c.close()
    assert set(statuses) <= {200, 429}
    allowed = statuses.count(200)
    # Alone, each process would have let 100 through and the pair at least 200.
    assert 100 - 2 * 5 <= allowed <= 100 + 1.0 * elapsed, (allowed, elapsed)
    assert statuses.count(429) == 300 - allowed


def test_no_token_is_401_not_429(limited_hub: HubProcess) -> None:
    # Unauthenticated requests never reach (or drain) a bucket.
    with limited_hub.client() as c:
        assert [c.get("/api/v1/factories").status_code for _ in range(5)] == [401] * 5


def test_agent_waits_out_retry_after(tmp_path: Path) -> None:
    """A real agent refused with 429 waits as long as Retry-After says, not its own (much
    shorter) backoff, and every request carries the agent's own X-Request-ID."""
    broker = Broker(tmp_path).start()
    hub = Hub(tmp_path)
    token_ = hub.add_gateway("gw-rl")
    # One request per 2 s, no burst: the second sync is refused with Retry-After: 2.
    with hub.config.open("a") as fh:
        fh.write('rate_limit_per_s = 0.5\nrate_limit_burst = 1\nlog_format = "json"\n')
    agent = Agent(
        tmp_path,
        gateway_id="gw-rl",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token_,
        settings={
            "hub": {"backoff_min_s": 0.01, "backoff_max_s": 0.05, "interval_s": 0.05},
            "metrics": {"listen": ""},
        },
    )
    with stopping(broker, hub.start(), agent.start()):
        # Read from /metrics: the read token is rate-limited like any other. The hub's count
        # is what is waited on: the agent's backlog is 0 too before a message has arrived.
        accepted = 'edge_hub_ingest_readings_total{result="accepted"}'

        def stored(n: int) -> bool:
            return _sample(httpx.get(f"{hub.url}/metrics").text, accepted, 0.0) == n

        pub = Publisher(broker.port)
        try:
            pub.publish("factory/l1/m1/temp", {"value": 1})
            wait_for("the first sync", lambda: stored(1))
            pub.publish("factory/l1/m1/temp", {"value": 2})
            wait_for("the second sync", lambda: stored(2))
        finally:
            pub.close()
        wait_for("the agent's backlog to drain", lambda: agent.status()["backlog"] == 0)
        metrics = httpx.get(f"{hub.url}/metrics").text
        assert _sample(metrics, accepted) == 2
        refused = _sample(metrics, "edge_hub_rate_limited_requests_total")
        # Its own backoff (<= 0.05 s) would have hit the hub dozens of times in those 2 s.
        assert 1 <= refused <= 3
    ingest_lines = [
        json.loads(line)
        for line in hub.proc.log_path.read_text().splitlines()
        if line.startswith("{") and '"/api/v1/ingest"' in line
    ]
    assert ingest_lines, "the hub logged no 429 for the agent's requests"
    assert all(re.fullmatch(r"[0-9a-f]{32}", doc["request_id"]) for doc in ingest_lines)


def _sample(text: str, name: str, missing: float | None = None) -> float:
    """The value of sample ``name``; ``missing`` when it is absent (None: an error)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    if missing is not None:
        return missing
    raise AssertionError(f"{name} not in metrics")

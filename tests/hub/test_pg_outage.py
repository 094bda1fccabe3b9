"""A PostgreSQL server lost under a running hub (kill -9, then back): ingest answers 2xx or
a quick 503 database_unavailable with Retry-After, never 500; /health/ready follows the
server; every batch answered 2xx is stored exactly once, and the hub writes again without a
restart. The server is this module's own (tests/pg.py), not the session's shared one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, start_hub, token
from tests.pg import PgServer

BATCHES = 300
PER_BATCH = 20
T0 = time.time() - 3600
# What "quickly" means here: the hub's bounds (2 s to connect, 2 s for a pooled connection)
# plus a loaded machine's slack.
ANSWER_BOUND_S = 8.0


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    # Commits wait for their WAL: the test servers' default would lose confirmed commits.
    server = PgServer(commit_waits_for_wal=True).start()
    yield server
    server.stop()


def _batch(n: int) -> bytes:
    first = n * PER_BATCH + 1
    readings = [
        WireReading(seq, f"l/m/s{seq % 4}", T0 + seq / 10, float(seq), None)
        for seq in range(first, first + PER_BATCH)
    ]
    return encode_batch(Batch(gateway_id="gw-01", readings=readings))


class Agent(threading.Thread):
    """Posts batches in order, each again after a 503 (as edge-agent does), and records
    every answer."""

    def __init__(self, hub: HubProcess, gateway_token: str) -> None:
        super().__init__(daemon=True)
        self.hub = hub
        self.headers = {"Authorization": f"Bearer {gateway_token}", "Content-Encoding": "gzip"}
        self.answers: list[tuple[int, float, str | None]] = []  # status, seconds, Retry-After
        self.stored: list[int] = []  # batches answered 2xx
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def wait_for(self, what: str, predicate: object, timeout: float = 30.0) -> None:
        with self.progress:
            assert self.progress.wait_for(predicate, timeout), f"timed out waiting for {what}"  # type: ignore[arg-type]

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.hub.url, timeout=30) as client:
                for n in range(BATCHES):
                    body = _batch(n)
                    while True:
                        started = time.monotonic()
                        resp = client.post("/api/v1/ingest", content=body, headers=self.headers)
                        with self.progress:
                            self.answers.append(
                                (
                                    resp.status_code,
                                    time.monotonic() - started,
                                    resp.headers.get("retry-after"),
                                )
                            )
                            if resp.is_success:
                                self.stored.append(n)
                            self.progress.notify_all()
                        if resp.is_success or resp.status_code != 503:
                            break
                        time.sleep(0.05)  # the agent waits Retry-After; a test need not
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc
        finally:
            with self.progress:
                self.progress.notify_all()

    def refused(self) -> int:
        return sum(1 for status, _, _ in self.answers if status == 503)


def _ready_status(hub: HubProcess) -> httpx.Response:
    return httpx.get(f"{hub.url}/health/ready", timeout=30)


def _until_ready_is(hub: HubProcess, status: int, bound_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        asked = time.monotonic()
        resp = _ready_status(hub)
        assert time.monotonic() - asked < ANSWER_BOUND_S, "/health/ready took too long"
        if resp.status_code == status:
            return time.monotonic() - started
    raise AssertionError(f"/health/ready did not turn {status} within {bound_s}s")


def test_a_killed_server_is_503_then_the_hub_writes_again(
    tmp_path: Path, own_server: PgServer
) -> None:
    url = own_server.create_database()
    hub = start_hub(
        tmp_path,
        database=url,
        anomaly_scan_interval_s=0,
        database_connect_timeout_s=2.0,
        database_pool_timeout_s=2.0,
        # No rate limit: this agent posts back to back and retries a 503 every 50 ms (a
        # real one waits Retry-After), which can outrun the default 100/s plus its burst;
        # a 429 would be the limit working, not the outage under test.
        rate_limit_per_s=0,
    )
    try:
        gateway = token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")
        agent = Agent(hub, gateway)
        agent.start()
        agent.wait_for("batches before the crash", lambda: len(agent.stored) >= 50)

        own_server.kill9()
        down_after_s = _until_ready_is(hub, 503, ANSWER_BOUND_S)
        body = _ready_status(hub).json()
        assert body["error"]["code"] == "database_unavailable"
        assert body["error"]["details"] == [{"host": f"127.0.0.1:{own_server.port}"}]
        assert httpx.get(f"{hub.url}/health/live").status_code == 200
        agent.wait_for("a 503 while the server is down", lambda: agent.refused() >= 3)

        own_server.restart()
        up_after_s = _until_ready_is(hub, 200, 30.0)
        agent.join(timeout=60)
        assert not agent.is_alive() and agent.error is None, agent.error
        print(f"ready 503 after {down_after_s:.2f}s, 200 after {up_after_s:.2f}s")

        statuses = {status for status, _, _ in agent.answers}
        assert statuses <= {200, 503}, statuses
        refusals = [(secs, retry) for status, secs, retry in agent.answers if status == 503]
        assert all(retry == "2" for _, retry in refusals)
        slowest = max(secs for secs, _ in refusals)
        assert slowest < ANSWER_BOUND_S, f"a 503 took {slowest:.1f}s"
        assert agent.stored == list(range(BATCHES))

        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM readings"
            ).fetchone()
        total = BATCHES * PER_BATCH
        assert row == (total, total, 1, total)  # every batch once, nothing lost or doubled
    finally:
        hub.stop()

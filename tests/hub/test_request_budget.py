"""What a request asks of the database, on both engines: the budget that keeps the hub's
cost per request from growing with every feature.

A usual ingest batch (its sensors known, nothing of it stored, no edge alert) and the
console's most frequent read go through the whole request wrapper as Robyn calls it (token,
rate limit, decode and checks, the handler, metrics) and are counted where their cost is:
round trips to the server on PostgreSQL (libpq's own trace of the protocol, where a Sync or
a simple Query ends each exchange), statements on SQLite (each execute or executemany). One
request in a chunk of the rate limit's tokens also visits the shared bucket (hub.ratelimit,
hub.storage.quotas), counted apart.

A change that makes every request ask more fails here: raise the budget on purpose, with the
measured cost in docs/performance.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from psycopg import pq

from hub.app import Hub, scope_of
from hub.auth import GatewayTokenCache, generate_token, hash_token
from hub.config import HubSettings
from hub.storage import Storage
from hub.storage.postgres import liveness
from tests.hub.conftest import engine_of
from tests.hub.test_app import FakeResponse

# A usual batch on PostgreSQL: one statement in autocommit (hub/storage/postgres/onetrip.py).
# On SQLite, in the writer's transaction: BEGIN IMMEDIATE, the sensors' check, the duplicate
# probe, the readings, three rollup tiers, the scan queue, the active alerts' peaks, the
# gateway's report, the offline clear, COMMIT.
INGEST = {"postgresql": 1, "sqlite": 12}
# The console's count of alarms to act on, asked by every open page at every poll: the
# person's token, then one read transaction (BEGIN, the total, the page, its end).
ALARM_COUNT = {"postgresql": 5, "sqlite": 5}
# A visit to the rate limit's shared bucket (hub/storage/quotas.py): read the row, then write
# it if unchanged, each its own transaction (SQLite's write in BEGIN IMMEDIATE ... COMMIT).
LEASE = {"postgresql": 2, "sqlite": 4}
BATCH = 100


class _Query:
    def __init__(self, params: dict[str, str]) -> None:
        self._params = params

    def to_dict(self) -> dict[str, list[str]]:
        return {k: [v] for k, v in self._params.items()}


class _Request:
    """What the hub's handler reads of Robyn's request."""

    def __init__(
        self, path: str, token: str, body: str = "", params: dict[str, str] | None = None
    ) -> None:
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self.url = types.SimpleNamespace(path=path)
        self.path_params: dict[str, str] = {}
        self.query_params = _Query(params or {})
        self.body = body


class _CountingSQLite(sqlite3.Connection):
    statements = 0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        _CountingSQLite.statements += 1
        return super().execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        _CountingSQLite.statements += 1
        return super().executemany(*args)


@pytest.fixture
def counted(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Storage, Callable[[], int]]]:
    """A storage on ``database_url`` whose every connection is counted, and the count so far
    (round trips on PostgreSQL, statements on SQLite)."""
    traces: list[IO[str]] = []
    if database_url.startswith("postgresql"):
        connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

        def traced(cls: type[psycopg.Connection[Any]], *a: Any, **k: Any) -> Any:
            conn = connect(cls, *a, **k)
            out = (tmp_path / f"trace-{len(traces)}.txt").open("w")
            traces.append(out)
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            return conn

        monkeypatch.setattr(psycopg.Connection, "connect", classmethod(traced))

        def trips() -> int:
            # libpq flushes its trace with each message it sends.
            return sum(
                1
                for t in traces
                for line in Path(t.name).read_text().splitlines()
                if line.startswith("F\t") and line.split("\t")[2] in ("Sync", "Query")
            )

        count = trips
    else:
        connect_sqlite = sqlite3.connect
        monkeypatch.setattr(
            sqlite3,
            "connect",
            lambda *a, **k: connect_sqlite(*a, **{**k, "factory": _CountingSQLite}),
        )
        monkeypatch.setattr(_CountingSQLite, "statements", 0)

        def count() -> int:
            return _CountingSQLite.statements

    # A connection lent again within the liveness window needs no round trip first; a slow
    # machine must not stall past it between two requests of this test.
    monkeypatch.setattr(liveness, "FRESH_S", 3600.0)
    storage = Storage(database_url)
    storage.migrate()
    yield storage, count
    storage.close()
    for t in traces:
        t.close()


class _Served:
    """The hub's handlers over a counted storage, as Robyn would call them, and the count of
    each request apart from the rate limit's visits to its shared bucket."""

    def __init__(
        self, storage: Storage, count: Callable[[], int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.storage, self.count = storage, count
        self.hub = Hub(HubSettings(), storage)
        # No token lookup falls due in the middle of a test.
        self.hub.tokens = GatewayTokenCache(storage, ttl_s=3600.0)
        self.visits = 0
        self.lease = LEASE[engine_of(storage)]
        lease = storage.quotas.lease

        def visit(*a: Any, **k: Any) -> tuple[float | None, float]:
            self.visits += 1
            return lease(*a, **k)

        monkeypatch.setattr(storage.quotas, "lease", visit)

    def handler(self, method: str, path: str) -> Callable[[_Request], FakeResponse]:
        (route,) = [r for r in self.hub.routes() if (r.method, r.path) == (method, path)]
        return self.hub.endpoint(  # type: ignore[return-value]
            types.SimpleNamespace(Response=FakeResponse),  # type: ignore[arg-type]
            method,
            path,
            route.roles,
            route.handler,
            rows=route.rows,
            scope=scope_of(method, path, route.roles, route.scope),
        )

    def costs(self, send: Callable[[], None], requests: int) -> list[int]:
        """What each of ``requests`` sends costs, its visits to the shared bucket taken out;
        after enough of them to pass psycopg's preparing of each statement (on its fifth run
        on a connection, a round trip of its own), the rate limit's statements included (a
        visit in ten requests, its read and its write each on a connection of the pool)."""
        for _ in range(120):
            send()
        visits, per = self.visits, []
        for _ in range(requests):
            before, visited = self.count(), self.visits
            send()
            per.append(self.count() - before - self.lease * (self.visits - visited))
        # One request in a chunk of the rate limit's tokens visits the shared bucket.
        assert 0 < self.visits - visits <= requests / self.hub.limiter.chunk + 1
        return per


def test_a_usual_batch_costs_one_round_trip_or_its_statements(
    counted: tuple[Storage, Callable[[], int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, count = counted
    token = generate_token("gateway")
    storage.add_gateway("gw-1", "acme", hash_token(token))
    served = _Served(storage, count, monkeypatch)
    ingest = served.handler("POST", "/api/v1/ingest")
    t0 = time.time() - 3600
    seqs = iter(range(1, 10**6, BATCH))

    def post() -> None:
        seq = next(seqs)
        readings = [
            [seq + i, f"l/m/s{i % 5}", t0 + (seq + i) / 100, float(i)] for i in range(BATCH)
        ]
        body = json.dumps({"gateway_id": "gw-1", "readings": readings})
        response = ingest(_Request("/api/v1/ingest", token, body))
        assert response.status_code == 200, response.description[:300]
        assert json.loads(response.description)["data"]["accepted"] == BATCH

    # The first batch makes the sensors; the usual ones follow.
    assert served.costs(post, 50) == [INGEST[engine_of(storage)]] * 50


def test_the_consoles_alarm_count_costs_one_read_transaction(
    counted: tuple[Storage, Callable[[], int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, count = counted
    token = generate_token("read")
    storage.add_token("read", hash_token(token), name="ida")
    served = _Served(storage, count, monkeypatch)
    alerts = served.handler("GET", "/api/v1/alerts")
    asked = {"state": "active", "acknowledged": "false", "shelved": "false", "per_page": "1"}

    def poll() -> None:
        response = alerts(_Request("/api/v1/alerts", token, params=asked))
        assert response.status_code == 200, response.description[:300]
        assert json.loads(response.description)["meta"]["total"] == 0

    assert served.costs(poll, 50) == [ALARM_COUNT[engine_of(storage)]] * 50

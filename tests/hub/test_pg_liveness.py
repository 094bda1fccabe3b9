"""The PostgreSQL pool lends a connection handed back a moment ago without a round trip
first, and still never lends one the server has ended (it is replaced, the request works)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devtools.stack import wait_for
from hub.storage.model import Waits
from hub.storage.postgres import liveness
from hub.storage.postgres.pool import PgPool
from tests.pg import PgServer


@pytest.fixture
def pool(pg_server: PgServer) -> Iterator[PgPool]:
    p = PgPool(pg_server.create_database(), "test", max_size=1, waits=Waits())
    yield p
    p.close()


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per round-trip check the pool made before a loan."""
    made: list[int] = []
    original = ConnectionPool.check_connection

    def counted(conn: psycopg.Connection[Any]) -> None:
        made.append(1)
        original(conn)

    monkeypatch.setattr(liveness.ConnectionPool, "check_connection", staticmethod(counted))
    return made


def backend_pid(pool: PgPool) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_back_a_moment_ago_is_lent_without_a_round_trip(
    pool: PgPool, full_checks: list[int]
) -> None:
    first = backend_pid(pool)
    checks = len(full_checks)
    assert [backend_pid(pool) for _ in range(20)] == [first] * 20
    assert len(full_checks) == checks


def test_a_connection_the_server_ended_is_replaced_not_lent(
    pool: PgPool, pg_server: PgServer, full_checks: list[int]
) -> None:
    first = backend_pid(pool)
    with psycopg.connect(pg_server.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        wait_for(
            "the ended backend to exit",
            lambda: (
                not admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,)
                ).fetchone()
            ),
        )
    # The ended session's socket says so: the loan checks it, finds it dead, opens another.
    second = backend_pid(pool)
    assert second != first
    assert full_checks


def test_a_connection_idle_past_the_window_is_checked(
    pool: PgPool, full_checks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_pid(pool)
    monkeypatch.setattr(liveness, "FRESH_S", 0.0)
    checks = len(full_checks)
    backend_pid(pool)
    assert len(full_checks) == checks + 1


def test_a_connection_goes_back_without_the_pools_worker_thread(
    pool: PgPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A returned connection is lendable at once: handing it to psycopg_pool's worker thread
    (as its ``reset`` callback would) cost a thread switch per request."""
    backend_pid(pool)  # opened, and its first connection made
    tasks: list[object] = []
    original = ConnectionPool.run_task

    def counted(self: ConnectionPool[Any], task: object) -> None:
        tasks.append(task)
        original(self, task)  # type: ignore[arg-type]

    monkeypatch.setattr(ConnectionPool, "run_task", counted)
    first = backend_pid(pool)
    assert [backend_pid(pool) for _ in range(20)] == [first] * 20
    assert tasks == []

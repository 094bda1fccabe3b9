"""A snapshot read on PostgreSQL (a list's total and its page, a report's parts) is one
read-only transaction that sees one state throughout, opened by a single statement, and a
read that fails inside it leaves its connection out of the transaction and lendable again."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from hub.storage.model import Waits
from hub.storage.postgres.pool import PgPool
from tests.pg import PgServer


@pytest.fixture
def url(pg_server: PgServer) -> str:
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int)")
    return url


@pytest.fixture
def pool(url: str) -> Iterator[PgPool]:
    p = PgPool(url, "test", max_size=1, waits=Waits())
    yield p
    p.close()


def _count(conn: object) -> int:
    row = conn.execute("SELECT count(*) FROM t").fetchone()  # type: ignore[attr-defined]
    return int(row[0])


def test_a_snapshot_read_sees_one_state_and_writes_nothing(pool: PgPool, url: str) -> None:
    with pool.reader(snapshot=True) as conn:
        assert _count(conn) == 0
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("INSERT INTO t VALUES (1)")
        assert _count(conn) == 0  # the row committed meanwhile is not in this snapshot
        row = conn.execute("SHOW transaction_isolation").fetchone()
        assert row is not None and row[0] == "repeatable read"
        row = conn.execute("SHOW transaction_read_only").fetchone()
        assert row is not None and row[0] == "on"
    with pool.reader() as conn:
        assert _count(conn) == 1


def test_a_read_that_fails_in_its_snapshot_leaves_the_connection_lendable(
    pool: PgPool,
) -> None:
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    with pytest.raises(psycopg.errors.UndefinedTable), pool.reader(snapshot=True) as read:
        read.execute("SELECT * FROM no_such_table")
    with pool.connection() as conn:
        assert conn.info.backend_pid == pid  # the same connection, not a replacement
        assert conn.info.transaction_status == TransactionStatus.IDLE
    with pool.reader(snapshot=True) as conn:
        assert _count(conn) == 0

"""PostgreSQL connections: a psycopg_pool pool of autocommit connections.

Unlike SQLite, PostgreSQL runs writers concurrently, so every call (read or write) borrows
its own connection; a write opens an explicit transaction on it. The shared statements are
written with ``?`` placeholders (SQLite's); :class:`PgConn` hands psycopg ``%s`` instead.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.errors import ReadOnlySqlTransaction
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from hub.storage.model import Waits
from hub.storage.postgres.liveness import Liveness
from hub.storage.postgres.onetrip import register as register_packed_arrays
from hub.storage.postgres.reach import UNAVAILABLE, check_primary, connect_options, unavailable
from hub.storage.postgres.rollups import ROLLUP_STAGING_DDL

_IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)

# Each pooled connection has its own staging table for COPY (see PostgresStorage): temporary,
# so no other session sees it and nothing is WAL-logged; emptied by every commit.
STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_in (id bigint, sensor_id bigint, "
    "ts double precision, value double precision, gateway_id bigint, seq bigint) "
    "ON COMMIT DELETE ROWS"
)


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the shared SQL has no literal ``%`` or ``?``)."""
    return sql.replace("?", "%s")


@contextmanager
def snapshot_of(conn: psycopg.Connection[Any]) -> Iterator[PgConn]:
    """``conn`` (in autocommit) in a read-only transaction that sees one snapshot throughout.

    One statement opens it as it must be: BEGIN and then SET TRANSACTION were two round
    trips. Read only, so it ends the same way whether it commits or not."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    try:
        yield PgConn(conn)
    except BaseException:
        if conn.pgconn.transaction_status in _IN_TRANSACTION:
            with contextlib.suppress(psycopg.Error):  # the error under way says more
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class PgConn:
    """A psycopg connection that speaks the shared statements (see hub.storage.sqlbase.Conn)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self.raw.execute(pg_sql(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.executemany(pg_sql(sql), params)
        return cur


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(STAGING_DDL)
    conn.execute(ROLLUP_STAGING_DDL)  # rollups.py: a batch's partials
    register_packed_arrays(conn)  # onetrip.py: a batch's columns as binary arrays


class PgPool:
    def __init__(
        self, conninfo: str, where: str, max_size: int = 8, waits: Waits | None = None
    ) -> None:
        self.conninfo = conninfo
        self.where = where
        self.max_size = max_size
        self.waits = waits or Waits()
        self._lock = threading.Lock()
        self._liveness = Liveness()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    def _opened(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The pool, opened on first use (and again after close, like SQLite's)."""
        if self._pool is not None:
            return self._pool
        # One plain session first, outside the lock (requests at a start without a database
        # each wait only their own bound): its error names the problem (auth, host, no such
        # database, only standbys), where the pool's would only say it timed out.
        check_primary(self.conninfo, self.waits)
        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"autocommit": True, **connect_options(self.waits)},
                    configure=_configure,
                    # A connection to a server that restarted or moved is found dead when
                    # borrowed and replaced, not handed to a request (liveness.py).
                    check=self._liveness.check,
                    timeout=self.waits.pool_s,
                    # psycopg_pool retries a lost connection with a doubling delay: after a
                    # failover of 20 s its next try could be 16 s away. Giving up early lets
                    # the next request start a fresh try (1 s apart) instead.
                    reconnect_timeout=max(self.waits.pool_s, 2.0),
                    open=False,
                    name="edge-hub",
                )
                try:
                    pool.open(wait=True, timeout=self.waits.pool_s)
                except Exception as exc:  # PoolTimeout
                    pool.close()
                    raise unavailable(exc, self.conninfo) from None
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; no writable database within the bounds of :class:`Waits` (or
        the connection lost while in use) raises :class:`DatabaseUnavailable`."""
        try:
            with self._liveness.lend(self._opened()) as conn:
                try:
                    yield conn
                except ReadOnlySqlTransaction:
                    conn.close()  # a standby: the pool drops it instead of lending it again
                    raise
        except UNAVAILABLE as exc:
            raise unavailable(exc, self.conninfo) from None

    @contextmanager
    def reader(self, snapshot: bool = False) -> Iterator[PgConn]:
        with self.connection() as conn:
            if not snapshot:
                yield PgConn(conn)
                return
            with snapshot_of(conn) as read:
                yield read

    @contextmanager
    def write(self) -> Iterator[PgConn]:
        with self.connection() as conn, conn.transaction():
            yield PgConn(conn)

    def write_one(self, sql: str, params: Sequence[Any]) -> int:
        with self.connection() as conn:  # autocommit: the statement is the transaction
            return conn.execute(pg_sql(sql), params).rowcount

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

"""PostgreSQL connections: a psycopg_pool pool of autocommit connections.

Unlike SQLite, PostgreSQL runs writers concurrently, so every call (read or write) borrows
its own connection; a write opens an explicit transaction on it. The shared statements are
written with ``?`` placeholders (SQLite's); :class:`PgConn` hands psycopg ``%s`` instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from hub.storage.model import StorageError
from hub.storage.postgres.rollups import ROLLUP_STAGING_DDL

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


class PgPool:
    def __init__(self, conninfo: str, where: str, max_size: int = 8) -> None:
        self.conninfo = conninfo
        self.where = where
        self.max_size = max_size
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    def _opened(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The pool, opened on first use (and again after close, like SQLite's)."""
        with self._lock:
            if self._pool is None:
                try:
                    # One plain connection first: its error names the problem (auth, host,
                    # no such database), where the pool's would only say it timed out.
                    psycopg.connect(self.conninfo, connect_timeout=10).close()
                except psycopg.Error as exc:
                    raise StorageError(f"cannot open database {self.where}: {exc}") from None
                pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"autocommit": True},
                    configure=_configure,
                    open=False,
                    name="edge-hub",
                )
                try:
                    pool.open(wait=True, timeout=10.0)
                except Exception as exc:  # PoolTimeout
                    pool.close()
                    raise StorageError(f"cannot open database {self.where}: {exc}") from None
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._opened().connection() as conn:
            yield conn

    @contextmanager
    def reader(self, snapshot: bool = False) -> Iterator[PgConn]:
        with self.connection() as conn:
            if not snapshot:
                yield PgConn(conn)
                return
            with conn.transaction():
                # The first statement of the transaction, so it applies to all of it.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield PgConn(conn)

    @contextmanager
    def write(self) -> Iterator[PgConn]:
        with self.connection() as conn, conn.transaction():
            yield PgConn(conn)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

"""The read database (``read_database`` in hub.toml): a second pool, for history reads.

It serves what ``Storage`` reads through its history concerns (hub.storage.read_face):
raw readings, series, stats, rolling averages and report intervals. A standby may be
behind its primary; each read measures by how much, into the request's note
(hub.storage.lag), so the answer says ``meta.lag_s``.

A read database that does not answer is not an outage: its reads go to the primary
instead (they are the primary's data, only fresher) and it is tried again after
:data:`RETRY_AFTER_S`, so a dead standby costs one bounded connect per interval, not one
per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from hub.storage.lag import current_note
from hub.storage.model import DatabaseUnavailable, Waits
from hub.storage.postgres.liveness import Liveness
from hub.storage.postgres.pool import PgConn, PgPool, snapshot_of
from hub.storage.postgres.reach import UNAVAILABLE, connect_options
from hub.storage.sqlbase import Conn
from hub.storage.url import hosts_of

log = structlog.get_logger("edge_hub.storage")

# How long reads stay on the primary after the read database failed to answer.
RETRY_AFTER_S = 10.0

# The replication lag in seconds. A primary has none. A standby that has replayed all it
# received has none either, however old its last replayed commit is (an idle primary sends
# no commits): only WAL received and not yet replayed is lag, and then it is measured from
# the last commit replayed. A standby fed from an archive alone (no receive position) is
# measured from its last replayed commit.
LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0.0
  WHEN pg_last_wal_receive_lsn() IS NOT NULL
       AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0.0
  ELSE coalesce(
    greatest(0.0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8), 0.0)
END
"""


def lost(exc: Exception, conninfo: str) -> DatabaseUnavailable:
    hosts = hosts_of(conninfo)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(f"read database lost ({', '.join(hosts)}): {reason}", hosts)


class ReplicaPool:
    """Connections to the read database, falling back to ``primary``'s readers."""

    def __init__(self, conninfo: str, where: str, primary: PgPool, max_size: int = 8) -> None:
        self.conninfo = conninfo
        self.where = where
        self.primary = primary
        self.waits: Waits = primary.waits
        self.max_size = max_size
        self._lock = threading.Lock()
        self._liveness = Liveness()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._down_until = 0.0

    def _opened(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._lock:
            if self._pool is None:
                # No session setup: a standby refuses even temporary tables, and reads need
                # none (the primary's pool makes its COPY staging tables).
                pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.max_size,
                    kwargs={"autocommit": True, **connect_options(self.waits)},
                    check=self._liveness.check,
                    timeout=self.waits.pool_s,
                    reconnect_timeout=max(self.waits.pool_s, 2.0),
                    open=False,
                    name="edge-hub-read",
                )
                try:
                    pool.open(wait=True, timeout=self.waits.pool_s)
                except Exception:  # PoolTimeout: the caller falls back
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def _down(self, exc: Exception) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(
            "read database unavailable; history reads go to the primary",
            read_database=self.where,
            retry_in_s=RETRY_AFTER_S,
            reason=reason,
        )
        self._down_until = time.monotonic() + RETRY_AFTER_S
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=0)

    def _borrow(self, stack: ExitStack) -> psycopg.Connection[Any] | None:
        """A connection to the read database with its lag noted, or None: use the primary."""
        if time.monotonic() < self._down_until:
            return None
        try:
            conn = stack.enter_context(self._liveness.lend(self._opened()))
            row = conn.execute(LAG_SQL).fetchone()
        except Exception as exc:  # PoolTimeout, a refused or lost server, a bad login
            stack.close()
            self._down(exc)
            return None
        note = current_note()
        if note is not None:
            lag = float(row[0]) if row is not None and row[0] is not None else 0.0
            note.lag_s = max(note.lag_s or 0.0, lag)
        return conn

    @contextmanager
    def reader(self, snapshot: bool = False) -> Iterator[Conn]:
        with ExitStack() as stack:
            conn = self._borrow(stack)
            if conn is None:
                note = current_note()
                if note is not None and note.lag_s is None:
                    note.lag_s = 0.0  # read on the primary: nothing to be behind
                with self.primary.reader(snapshot) as fallback:
                    yield fallback
                return
            try:
                if not snapshot:
                    yield PgConn(conn)
                    return
                with snapshot_of(conn) as read:
                    yield read
            except UNAVAILABLE as exc:
                # Lost in the middle of a read: this request answers 503 like any other.
                raise lost(exc, self.conninfo) from None

    def write(self) -> Any:
        raise RuntimeError("the read database takes no writes")

    def write_one(self, sql: str, params: Sequence[Any]) -> int:
        raise RuntimeError("the read database takes no writes")

    def lag_s(self) -> float | None:
        """The read database's lag now, for /metrics; None when it does not answer."""
        if time.monotonic() < self._down_until:
            return None
        try:
            with self._liveness.lend(self._opened()) as conn:
                row = conn.execute(LAG_SQL).fetchone()
        except Exception as exc:
            self._down(exc)
            return None
        return float(row[0]) if row is not None and row[0] is not None else 0.0

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

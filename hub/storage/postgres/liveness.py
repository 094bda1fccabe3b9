"""Whether a pooled connection may be lent without a round trip to the server first.

psycopg_pool's own check sends an empty query before every loan. Under a fleet that was a
tenth of the hub's Python time on PostgreSQL (docs/performance.md): a round trip per request
that almost always says yes. A server that restarts, fails over or ends a session closes the
connection's socket (or sends the reason first), which makes it readable; an idle connection
in good health has nothing to read. So a connection handed back within :data:`FRESH_S` whose
socket has nothing waiting is lent at once, and any other gets the full check.

What neither way sees at once is a server cut off the network without a word: the loan or
the check then waits until the connection's TCP timeout (hub.storage.postgres.reach) breaks
it, and the request on it answers 503, as one already running would.

The time a connection came back is noted by :meth:`Liveness.lend`, around the pool's own
loan, not by psycopg_pool's ``reset`` callback: with a ``reset``, the pool hands every
returned connection to its worker thread to run it, a thread switch (and a wait for the GIL)
per request, and the connection is not lendable again until that thread has run.
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

# A connection handed back this recently is trusted on its socket alone.
FRESH_S = 2.0


class Liveness:
    """A pool's ``check`` callback (psycopg_pool calls it before a connection is lent), and
    the loan that notes when each connection came back."""

    def __init__(self) -> None:
        self._back: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    @contextmanager
    def lend(
        self, pool: ConnectionPool[psycopg.Connection[Any]]
    ) -> Iterator[psycopg.Connection[Any]]:
        """``pool.connection()``, noting the moment the connection goes back to it."""
        with pool.connection() as conn:
            try:
                yield conn
            finally:
                with self._lock:
                    self._back[conn] = time.monotonic()

    def check(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            back = self._back.get(conn)
        if back is not None and time.monotonic() - back < FRESH_S and quiet(conn):
            return
        ConnectionPool.check_connection(conn)


def quiet(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn`` is open with nothing waiting on its socket (no error, no close, no
    message the server sent unasked)."""
    if conn.closed or conn.broken:
        return False
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)  # errors and hang-ups always count
    return not poller.poll(0)

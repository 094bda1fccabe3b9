"""Reaching a writable PostgreSQL primary, which may move (a Patroni cluster).

Every connection the hub opens is bounded: ``connect_timeout`` per host, and TCP keepalives
plus ``tcp_user_timeout`` so that a primary cut off the network breaks the connection in
seconds instead of the kernel's quarter of an hour of retransmissions. Which errors mean
"no writable primary now" (:data:`UNAVAILABLE`) is decided here once: the pool turns them
into :class:`DatabaseUnavailable`, which the app answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg import errors

from hub.storage.model import DatabaseUnavailable, Waits
from hub.storage.url import hosts_of, without_password

# OperationalError: refused, timed out, the server shut down or the connection lost (also a
# pool that found no connection in time, PoolTimeout). ReadOnlySqlTransaction: the session
# reached a standby (a primary demoted under a live connection, or a URL without
# target_session_attrs=read-write).
UNAVAILABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    errors.ReadOnlySqlTransaction,
)


def connect_options(waits: Waits) -> dict[str, Any]:
    """libpq parameters of every connection (they win over the URL's own)."""
    # libpq takes whole seconds and treats 1 as 2.
    connect_s = max(2, math.ceil(waits.connect_s))
    return {
        "connect_timeout": connect_s,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        # Data unacknowledged this long breaks the connection (Linux).
        "tcp_user_timeout": connect_s * 1000,
    }


def unavailable(exc: Exception, conninfo: str) -> DatabaseUnavailable:
    hosts = hosts_of(conninfo)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(
        f"no writable database answered ({', '.join(hosts)}): {reason}", hosts
    )


def check_primary(conninfo: str, waits: Waits) -> None:
    """Open one new session the way the pool does and ask that it can write; raises
    :class:`DatabaseUnavailable` naming the hosts tried otherwise. Bounded by the connect
    timeout per host."""
    try:
        with psycopg.connect(conninfo, autocommit=True, **connect_options(waits)) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except UNAVAILABLE as exc:
        raise unavailable(exc, conninfo) from None
    if row is None or row[0]:
        hosts = hosts_of(conninfo)
        raise DatabaseUnavailable(
            f"no writable database answered ({', '.join(hosts)}): the server reached is a "
            f"standby; add target_session_attrs=read-write to {without_password(conninfo)}",
            hosts,
        )

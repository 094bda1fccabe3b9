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

from hub.storage.model import DatabaseUnavailable, NoWritableHost, Waits
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


# What libpq says of a host that answered as a standby under target_session_attrs=read-write
# (or primary).
_STANDBY_SAYS = ("session is read-only", "server is in hot standby mode")


def unavailable(exc: Exception, conninfo: str) -> DatabaseUnavailable:
    hosts = hosts_of(conninfo)
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    # libpq names each host it tried, one failure per line: when each says standby, the
    # URL names no primary (as opposed to hosts that did not answer).
    failures = [line for line in text.splitlines() if "failed:" in line]
    if failures and all(any(s in line for s in _STANDBY_SAYS) for line in failures):
        return NoWritableHost(
            f"no writable database: none of {', '.join(hosts)} is writable, every host that "
            f"answered is a standby ({reason})",
            hosts,
        )
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
        raise NoWritableHost(
            f"no writable database answered ({', '.join(hosts)}): the server reached is a "
            f"standby, none is writable; add target_session_attrs=read-write to "
            f"{without_password(conninfo)}",
            hosts,
        )

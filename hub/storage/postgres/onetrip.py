"""A usual sync batch on PostgreSQL in one statement, its own transaction: sensors locked,
readings in, every rollup tier folded, the scan queue, the gateway's report and token check.

Per statement, not per row, is what a batch cost the hub and the server (docs/performance.md):
a dozen statements and BEGIN/COMMIT each paid psycopg's Python (parameters adapted, results
read) and a server round trip. Here the batch's columns and rollup partials travel as binary
PostgreSQL arrays, made in one native pass over its rows (``threshold_checker.
pg_batch_arrays``; psycopg would adapt a list element by element in Python), and one
data-modifying WITH applies them in autocommit.

Only the usual batch goes this way: every sensor known to the cache, no edge alert, nothing
of it stored before, its gateway and token valid, no offline alert to clear and no active
alert of its sensors whose peak it may move. Each write of the statement waits on that check
(``ok``), so otherwise nothing is written and the caller stores the batch step by step
(hub.storage.ingest), as every batch went before. The statement takes its locks in the
step-by-step order: sensors, readings, the tiers from the finest, the scan queue, the gateway.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from hub.storage.dialect import UsualBatch
from hub.storage.model import GatewayReport, ReadingRow
from hub.storage.postgres.partitions import day_of, partition_name
from hub.storage.postgres.rollups import on_conflict
from hub.storage.tiers import TIERS, narrow
from threshold_checker import pg_batch_arrays

# PostgreSQL's type oids: int8, and the int8 and float8 array types.
_INT8 = 20
_INT8_ARRAY, _FLOAT8_ARRAY = 1016, 1022


class Int8Array(bytes):
    """An ``int8[]`` already in PostgreSQL's binary array format (from ``pg_batch_arrays``
    or :func:`int8_array`)."""


class Float8Array(bytes):
    """A ``float8[]`` already in PostgreSQL's binary array format (from ``pg_batch_arrays``)."""


class _PackedDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


class _Int8ArrayDumper(_PackedDumper):
    oid = _INT8_ARRAY


class _Float8ArrayDumper(_PackedDumper):
    oid = _FLOAT8_ARRAY


def register(conn: psycopg.Connection[Any]) -> None:
    """Teach ``conn`` the packed arrays (the pool does, for each connection it opens)."""
    conn.adapters.register_dumper(Int8Array, _Int8ArrayDumper)
    conn.adapters.register_dumper(Float8Array, _Float8ArrayDumper)


def int8_array(values: Sequence[int]) -> Int8Array:
    """A short list (the batch's sensor ids) as an ``int8[]``, PostgreSQL's binary format:
    one dimension, no NULLs, the element type, the length, lower bound 1, then each element
    as its length (8) and its bytes, big-endian."""
    n = len(values)
    if n == 0:
        return Int8Array(struct.pack(">iiI", 0, 0, _INT8))
    return Int8Array(struct.pack(f">iiIii{'iq' * n}", 1, 0, _INT8, n, 1, *_lengths(values)))


def _lengths(values: Sequence[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        out += (8, v)
    return out


# The kinds of pg_batch_arrays' columns, in its order: the readings' (id, sensor_id, ts,
# value), then the partials' (tier, then _TIER_COLUMNS).
_READING_KINDS = (Int8Array, Int8Array, Float8Array, Float8Array)
_PARTIAL_KINDS = (
    Int8Array, Int8Array, Float8Array, Float8Array, Float8Array, Float8Array, Int8Array,
    Float8Array, Int8Array, Float8Array, Float8Array, Int8Array, Float8Array,
)  # fmt: skip


# What the statement's failure on purpose says (the cast's input, in the error's message).
_UNDONE = "edge-hub: usual batch undone, readings new:"

_TIER_COLUMNS = (
    "sensor_id, bucket, min, max, sum, count, first_ts, first_id, first_value, "
    "last_ts, last_id, last_value"
)


def _tier_sql(table: str, number: int, after: str | None) -> str:
    # A finer tier's part is read first, so that it runs to its end before this one starts:
    # every batch locks the tier rows it shares with another in the same order.
    wait = "" if after is None else f" AND (SELECT count(*) FROM {after}) >= 0"
    return (
        f"t{number} AS (INSERT INTO {table} ({_TIER_COLUMNS}) SELECT {_TIER_COLUMNS} FROM p "
        f"WHERE tier = {number}{wait} ORDER BY sensor_id, bucket {on_conflict(table)} "
        "RETURNING 1)"
    )


def _statement(token_check: bool, probe: str) -> str:
    tiers = [
        _tier_sql(tier.table, n, None if n == 1 else f"t{n - 1}") for n, tier in enumerate(TIERS, 1)
    ]
    last = f"t{len(TIERS)}"
    token = (
        " AND EXISTS (SELECT 1 FROM tokens WHERE id = %(token)s AND NOT revoked)"
        if token_check
        else ""
    )
    return (
        "WITH lk AS (SELECT id FROM sensors WHERE id = ANY(%(sensors)b) ORDER BY id "
        "FOR KEY SHARE), "
        # The usual batch: every sensor still there (and now locked), none of its readings
        # stored, its gateway and token not revoked, and nothing for the batch to clear or
        # raise: no offline alert of the gateway, no active alert of its sensors (a peak).
        "ok AS (SELECT (SELECT count(*) FROM lk) = %(nsensors)s AND NOT EXISTS "
        f"(SELECT 1 FROM {probe} WHERE id BETWEEN %(lo)s AND %(hi)s "
        "AND ts BETWEEN %(tlo)s AND %(thi)s) "
        f"AND EXISTS (SELECT 1 FROM gateways WHERE id = %(gw)s AND NOT revoked){token} "
        "AND NOT EXISTS (SELECT 1 FROM alerts WHERE gateway_id = %(gw)s "
        "AND kind = 'gateway_offline' AND state = 'active') "
        "AND NOT EXISTS (SELECT 1 FROM alerts WHERE state = 'active' "
        "AND sensor_id = ANY(%(sensors)b)) AS ok), "
        "ins AS (INSERT INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
        "SELECT r.id, r.sensor_id, r.ts, r.value, %(gw)s, r.id - %(base)s "
        "FROM unnest(%(ids)b, %(rsensors)b, %(ts)b, %(values)b) AS r(id, sensor_id, ts, value) "
        # No ON CONFLICT: the check found none of these rows, and a plain insert costs the
        # server less than a speculative one; another process's rows, stored meanwhile,
        # fail the statement on the unique key (the caller goes step by step).
        "WHERE (SELECT ok FROM ok) ORDER BY r.id RETURNING 1), "
        "n AS (SELECT count(*) AS n FROM ins), "
        f"p AS (SELECT * FROM unnest({', '.join(f'%(p{i})b' for i in range(13))}) "
        f"AS p(tier, {_TIER_COLUMNS}) WHERE (SELECT n FROM n) = %(nrows)s), "
        + ", ".join(tiers)
        + ", sq AS (INSERT INTO scan_queue (sensor_id) SELECT s FROM unnest(%(sensors)b) "
        f"WITH ORDINALITY AS q(s, o) WHERE (SELECT count(*) FROM {last}) >= 0 "
        "AND (SELECT n FROM n) > 0 ORDER BY o ON CONFLICT DO NOTHING RETURNING 1), "
        "gw AS (UPDATE gateways SET last_seen = %(now)s, backlog = %(backlog)s, "
        "dropped = %(dropped)s, dead_letters = %(dead)s, agent_version = %(agent)s "
        f"WHERE id = %(gw)s AND NOT revoked{token} AND (SELECT ok FROM ok) "
        "AND (SELECT count(*) FROM sq) >= 0 "
        "RETURNING (SELECT config_version FROM factories WHERE id = %(factory)s) AS v), "
        "gwc AS (SELECT count(*) AS c, max(v) AS v FROM gw) "
        # Read left to right: the writes run in the order above. When the batch was usual
        # yet another process stored some of its readings meanwhile, or revoked its gateway
        # or token, the statement fails on purpose (a cast of the reason), which undoes it
        # whole; the caller then stores the batch step by step.
        "SELECT CASE WHEN NOT (SELECT ok FROM ok) OR ((SELECT n FROM n) = %(nrows)s "
        "AND (SELECT c FROM gwc) = 1) THEN (SELECT ok FROM ok) "
        f"ELSE ('{_UNDONE} ' || (SELECT n FROM n) || ' of ' || %(nrows)s)::boolean END, "
        "(SELECT v FROM gwc)"
    )


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its named placeholders as PostgreSQL's own ``$1, $2 ...``, and the names
    in that order. Sent by a raw cursor: psycopg parses a statement for its placeholders on
    every call when it is longer than its cache takes (4 kB), which cost more than the
    statement's own round trip."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m[1] not in names:
            names.append(m[1])
        return f"${names.index(m[1]) + 1}"

    return re.sub(r"%\((\w+)\)[sb]", number, sql), tuple(names)


@lru_cache(maxsize=64)
def _sql(token_check: bool, probe: str) -> tuple[str, tuple[str, ...]]:
    return _numbered(_statement(token_check, probe))


def _probe(tlo: float, thi: float) -> str:
    """Where the check looks for the batch's readings: its day's partition when it lies
    within one day (the usual batch), else all of ``readings``.

    Through the parent, the check's plan holds every day partition: PostgreSQL 15 locks
    each of them, and their indexes, on every execution of a prepared plan, even the ones
    the batch's time range prunes. With 1,095 days kept the check alone cost the server
    0.40 ms instead of 0.05 ms, the whole statement twice its cost with a week of days.
    A partition detached by retention but not yet dropped still answers here: the check
    then finds rows the batch will not conflict with, and the batch goes step by step,
    which reads the parent."""
    day = day_of(tlo)
    return partition_name(day) if day_of(thi) == day else "readings"


def store(
    conn: psycopg.Connection[Any],
    gateway_id: int,
    factory_id: int,
    base: int,
    rows: Sequence[ReadingRow],
    sensor_ids: Sequence[int],
    widths: Sequence[float],
    report: GatewayReport,
    token_id: int | None,
    at: float,
) -> UsualBatch | None:
    """Apply the batch ``rows`` (ids ``base + seq``) in one statement, its own transaction
    (``conn`` in autocommit), folded into the rollup tiers of ``widths`` (all of
    :data:`TIERS`'; none when rollups are off); None, with nothing written, when it is not
    the usual batch (module doc)."""
    if not rows:
        return None
    columns, partials, (lo, hi, tlo, thi) = pg_batch_arrays(rows, widths)
    if not narrow(lo, hi, len(rows)):
        return None
    ids, sensors, ts, values = (kind(c) for kind, c in zip(_READING_KINDS, columns, strict=True))
    params: dict[str, Any] = {
        "sensors": int8_array(sensor_ids),
        "nsensors": len(sensor_ids),
        "lo": lo,
        "hi": hi,
        "tlo": tlo,
        "thi": thi,
        "gw": gateway_id,
        "base": base,
        "ids": ids,
        "rsensors": sensors,
        "ts": ts,
        "values": values,
        "nrows": len(rows),
        **{
            f"p{i}": kind(col)
            for i, (kind, col) in enumerate(zip(_PARTIAL_KINDS, partials, strict=True))
        },
        "now": at,
        "backlog": report.backlog,
        "dropped": report.dropped,
        "dead": report.dead_letters,
        "agent": report.agent_version,
        "factory": factory_id,
        "token": token_id,
    }
    sql, names = _sql(token_id is not None, _probe(tlo, thi))
    try:
        row = psycopg.RawCursor(conn).execute(sql, [params[n] for n in names]).fetchone()
    except psycopg.errors.UniqueViolation:
        return None  # another process stored some of these readings meanwhile
    except psycopg.errors.UndefinedTable:
        return None  # the day's partition was dropped by retention in another process
    except psycopg.errors.InvalidTextRepresentation as exc:
        if _UNDONE not in str(exc):
            raise
        return None
    assert row is not None  # a SELECT without FROM answers one row
    ok, version = row
    if not ok:
        return None
    return UsualBatch(accepted=len(rows), config_version=int(version))

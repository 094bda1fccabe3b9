"""How PostgreSQL differs: floor() buckets, readings in by binary COPY (with its race
fallback), row locks against a sensor's deletion, one-statement scan queueing, day
partitions (made before a batch, dropped by retention), advisory locks for jobs and leads,
information_schema for copy-data.

Ingest: one transaction per batch with the sensors, alerts and gateway report, all or
nothing. A probe of the primary key finds which of the batch's readings are stored already
(usually none); the others go by binary COPY straight into ``readings``. Should another hub
process store some of them meanwhile, the unique key stops that COPY, the transaction rolls
back whole, and the batch is stored again the careful way: COPY into a per-connection
staging table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. (A savepoint around
the COPY would undo it alone, at two round trips for every batch; the race is rare: an agent
re-sending a batch that timed out while the first attempt is still being stored.) A
(gateway, seq) already stored is skipped, however often it comes. Partitions for the batch's
days exist before its transaction starts (partitions.py).

Retention of raw readings drops whole day partitions, detached first with ``DETACH
PARTITION ... CONCURRENTLY`` (it waits for queries on the partition and never takes the
lock that would stop ingest into the other days); rollups go by bounded batched deletes.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import psycopg
import structlog

from hub.storage.dialect import Dialect, Fold, T, UsualBatch
from hub.storage.model import GatewayReport, ReadingRow
from hub.storage.postgres import onetrip
from hub.storage.postgres.catalog import after_copy, converters, primary_key, table_columns
from hub.storage.postgres.lead import AdvisoryLeads
from hub.storage.postgres.partitions import Partitions, day_of
from hub.storage.postgres.pool import PgConn, PgPool
from hub.storage.postgres.rollups import fold_rows, insert_staged, list_partitions
from hub.storage.sqlbase import Conn, Database
from hub.storage.tiers import TIER_WIDTHS, first_of_each, id_range
from shared.timeutil import now

log = structlog.get_logger("hub.storage.retention")

_COPY_TYPES = ["int8", "int8", "float8", "float8", "int8", "int8"]
# pg_advisory_xact_lock keys of "one alarm per sensor": "edga" in the high 32 bits, the sensor
# id in the low ones (every other key of the hub is a hash or spells a name in all 64).
_ALARM_LOCKS = 0x65646761 << 32
# True while a batch is stored the careful way (staging + ON CONFLICT), after its direct COPY
# met rows another process stored meanwhile. A context variable: per thread, so the batches
# other threads store at the same time keep the direct way.
_STAGED = contextvars.ContextVar("edge_hub_pg_staged", default=False)


class _CopyRaced(Exception):
    """The direct COPY met the unique key: redo the whole batch staged."""


class PgDialect(Dialect):
    bucket_start: ClassVar[str] = "floor(ts / ?) * ?"
    tier_bucket_start: ClassVar[str] = "floor(bucket / ?) * ?"
    lock_for_delete: ClassVar[str] = " FOR UPDATE"
    stores_usual: ClassVar[bool] = True  # onetrip.py
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.errors.IntegrityError,)

    def __init__(self, db: Database, pool: PgPool, partitions: Partitions, url: str) -> None:
        super().__init__(db)
        self._pool = pool
        self._partitions = partitions
        self._leads = AdvisoryLeads(url, pool.waits)

    # -- readings in -----------------------------------------------------------------------

    def before_readings(self, ts_values: Sequence[float]) -> None:
        """Make the partitions that rows at ``ts_values`` need (and the days ahead)."""
        at = now()
        first, last = day_of(min(ts_values, default=at)), day_of(max(ts_values, default=at))
        # The usual batch lies within one day: no need to look at each reading's.
        days = {first} if first == last else {day_of(ts) for ts in ts_values}
        days.add(day_of(at) + 7)  # keeps the week ahead made as days pass
        if self._partitions.all_known(days):
            return  # the usual case: no connection, no query
        with self._pool.connection() as conn:
            if self._partitions.missing(conn, days):
                self._partitions.ensure(conn, days)
                self._partitions.ensure_ahead(conn, at)

    def store_usual(
        self,
        gateway_id: int,
        factory_id: int,
        rows: list[ReadingRow],
        sensor_ids: Sequence[int],
        report: GatewayReport,
        token_id: int | None,
        rollups: Fold,
    ) -> UsualBatch | None:
        if _STAGED.get() or not rows:
            return None  # a batch that raced another process goes the careful way
        with self._pool.connection() as conn:  # autocommit: the statement is the transaction
            return onetrip.store(
                conn,
                gateway_id,
                factory_id,
                rows[0][0] - rows[0][5],
                rows,
                sensor_ids,
                TIER_WIDTHS if rollups.maintain else (),
                report,
                token_id,
                now(),
            )

    def guard_batch(self, store: Callable[[], T], times: Callable[[], Sequence[float]]) -> T:
        try:
            return self._in_partitions(store, times)
        except _CopyRaced:
            staged = _STAGED.set(True)
            try:
                return self._in_partitions(store, times)
            finally:
                _STAGED.reset(staged)

    def _in_partitions(self, store: Callable[[], T], times: Callable[[], Sequence[float]]) -> T:
        self.before_readings(times())
        try:
            return store()
        except psycopg.errors.CheckViolation as exc:
            # "no partition of relation readings found for row": a partition this process
            # believed in was dropped (retention) by another one. Reload and try once more.
            if "no partition" not in str(exc):
                raise
            self._partitions.forget()
            self.before_readings(times())
            return store()

    def lock_sensors(self, conn: Conn, sensor_ids: Sequence[int]) -> set[int]:
        # FOR KEY SHARE: concurrent batches of one sensor do not block each other, and neither
        # do threshold or stale-flag updates; a deletion (FOR UPDATE) waits for them all, and
        # a batch that meets a deletion in progress waits for it, then misses the row.
        if not sensor_ids:
            return set()
        rows = conn.execute(
            "SELECT id FROM sensors WHERE id = ANY(?::bigint[]) ORDER BY id FOR KEY SHARE",
            (list(sensor_ids),),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def hold_alarms(self, conn: Conn, sensor_ids: Collection[int]) -> None:
        # A transaction-level advisory lock per sensor, in id order (two batches with alerts
        # of the same sensors cannot deadlock): it conflicts only with itself, so ingest's
        # FOR KEY SHARE of the same sensors and their threshold updates pass as before.
        if sensor_ids:
            conn.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(?::bigint[]) AS k",
                ([_ALARM_LOCKS + s for s in sorted(set(sensor_ids))],),
            ).fetchone()

    def queue_scans(self, conn: Conn, sensor_ids: Sequence[int]) -> None:
        # One statement for the whole list: a 1,000-sensor batch made 1,000 before.
        # WITH ORDINALITY keeps the caller's (sorted) order, the lock order.
        conn.execute(
            "INSERT INTO scan_queue (sensor_id) SELECT s FROM unnest(?::bigint[]) "
            "WITH ORDINALITY AS q(s, n) ORDER BY n ON CONFLICT DO NOTHING",
            (list(sensor_ids),),
        )

    def insert_readings(self, conn: Conn, rows: list[ReadingRow], rollups: Fold) -> int:
        raw = cast(PgConn, conn).raw  # what this engine's pool hands out
        with raw.cursor() as cur:
            new = first_of_each(rows, _stored_ids(cur, rows))
            if not new:
                return 0
            if _STAGED.get():
                # Stage the batch and let INSERT ... ON CONFLICT DO NOTHING keep what is new
                # (ORDER BY id there: concurrent batches take index locks in one order).
                _copy(cur, "readings_in", rows)
                return insert_staged(cur, rows, rollups.maintain)
            try:
                # The usual case, a batch not stored before: straight into readings by one
                # binary COPY, the fastest way in.
                _copy(cur, "readings", new)
            except psycopg.errors.UniqueViolation as exc:
                # Another hub process stored some of these rows after the probe (module doc).
                raise _CopyRaced from exc
            if rollups.maintain:
                fold_rows(cur, new)  # the same transaction: stored means rolled up
        return len(new)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    # -- retention and tier usage --------------------------------------------------------

    def expire_raw(self, cutoff: float, max_rows: int) -> int:
        """Drop the oldest day partition that ends at or before ``cutoff``; returns its
        estimated rows (at least 1), or 0 when there is none."""
        with self._pool.connection() as conn:
            old = sorted(p for p in list_partitions(conn) if p[2] <= cutoff)
            if not old:
                return 0
            name, _lo, _hi, pending = old[0]
            estimate = conn.execute(
                "SELECT reltuples FROM pg_class WHERE relname = %s", (name,)
            ).fetchone()
            # Never wait long behind a query for the catalog lock: the next round retries.
            conn.execute("SET lock_timeout = '5s'")
            try:
                if pending:  # a DETACH ... CONCURRENTLY that was interrupted
                    conn.execute(f'ALTER TABLE readings DETACH PARTITION "{name}" FINALIZE')
                else:
                    conn.execute(f'ALTER TABLE readings DETACH PARTITION "{name}" CONCURRENTLY')
                conn.execute(f'DROP TABLE "{name}"')
            finally:
                conn.execute("RESET lock_timeout")
        self._partitions.forget()
        log.info("dropped a day of raw readings", partition=name)
        return max(1, int(estimate[0]) if estimate and estimate[0] and estimate[0] > 0 else 1)

    def oldest_raw(self, conn: Conn) -> float | None:
        # Per sensor along the index, but in the oldest partition that holds rows only: the
        # same probe over the partitioned table would visit every day.
        for name, _lo, _hi, _pending in sorted(list_partitions(conn), key=lambda p: p[1]):
            row = conn.execute(
                f'SELECT min(m) FROM (SELECT (SELECT min(ts) FROM "{name}" t '
                "WHERE t.sensor_id = s.id) AS m FROM sensors s) x"
            ).fetchone()
            if row is not None and row[0] is not None:
                return float(row[0])
        return None

    def table_bytes(self, conn: Conn, table: str) -> int | None:
        if table == "readings":
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = 'readings'::regclass"
            ).fetchone()
        else:
            row = conn.execute("SELECT pg_total_relation_size(?::regclass)", (table,)).fetchone()
        return int(row[0])

    @contextmanager
    def exclusive_job(self, name: str) -> Iterator[bool]:
        """Hold a session advisory lock named after the job for the block: yields False at
        once when another hub process holds it (that process runs the round)."""
        key = int.from_bytes(
            hashlib.blake2b(f"edge-hub:{name}".encode(), digest_size=8).digest(), "big", signed=True
        )
        with self._pool.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            got = bool(row and row[0])
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def try_lead(self, job: str) -> bool:
        return self._leads.try_lead(job)

    def release_leads(self) -> None:
        self._leads.release_leads()

    # -- the catalog, for copy-data ------------------------------------------------------

    def table_columns(self) -> dict[str, list[str]]:
        return table_columns(self.db)

    def primary_key(self, table: str) -> list[str]:
        return primary_key(self.db, table)

    def converters(self, table: str) -> dict[str, Callable[[Any], Any]]:
        return converters(self.db, table)

    def after_copy(self) -> None:
        after_copy(self.db)


def _copy(cur: psycopg.Cursor[Any], table: str, rows: Sequence[ReadingRow]) -> None:
    with cur.copy(
        f"COPY {table} (id, sensor_id, ts, value, gateway_id, seq) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def _stored_ids(cur: psycopg.Cursor[Any], rows: Sequence[ReadingRow]) -> set[int]:
    """Which ids of ``rows`` are stored already (usually none). The batch's ts range prunes the
    probe to the day partitions a re-sent reading can be in (it comes with its ts)."""
    if not rows:
        return set()
    t_lo = min(r[2] for r in rows)
    t_hi = max(r[2] for r in rows)
    span = id_range(rows)
    if span is not None:
        cur.execute(
            "SELECT id FROM readings WHERE id BETWEEN %s AND %s AND ts BETWEEN %s AND %s",
            (*span, t_lo, t_hi),
        )
    else:
        cur.execute(
            "SELECT id FROM readings WHERE id = ANY(%s) AND ts BETWEEN %s AND %s",
            (sorted({r[0] for r in rows}), t_lo, t_hi),
        )
    return {int(r[0]) for r in cur.fetchall()}

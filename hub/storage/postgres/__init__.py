"""The PostgreSQL engine (psycopg 3 + psycopg_pool), for sites that outgrow one hub box.

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

Schema changes run as numbered migrations under a session advisory lock, so hub processes
starting at once migrate the database exactly once and the others wait for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import psycopg

from hub.storage.alerts import AlertsMixin
from hub.storage.anomalies import AnomaliesMixin
from hub.storage.audit import AuditMixin
from hub.storage.bulk import BulkMixin
from hub.storage.crud import CrudMixin
from hub.storage.ingest import IngestMixin, ReadingRow
from hub.storage.migrations import check_sequence, pending
from hub.storage.model import GatewayReport, StorageError, StoreResult
from hub.storage.postgres.catalog import PgCatalog
from hub.storage.postgres.lead import PgLead
from hub.storage.postgres.partitions import Partitions, day_of
from hub.storage.postgres.pool import PgConn, PgPool
from hub.storage.postgres.rollups import PgRollupsMixin, fold_rows, insert_staged
from hub.storage.postgres.schema import MIGRATIONS, renumber_old_rows
from hub.storage.reads import ReadsMixin
from hub.storage.report import ReportMixin
from hub.storage.rollups import first_of_each, id_range
from hub.storage.sessions import SessionsMixin
from hub.storage.signin import SignInMixin
from hub.storage.sqlbase import Conn
from hub.storage.thresholds import ThresholdsMixin
from hub.storage.tokens import TokensMixin
from hub.storage.url import parse_database
from shared.timeutil import now
from shared.wire import WireAlert, WireReading

SCHEMA_VERSION = check_sequence(MIGRATIONS)
# pg_advisory_lock key for migrations ("edgemigr").
MIGRATE_LOCK = 0x656467656D696772
_COPY_TYPES = ["int8", "int8", "float8", "float8", "int8", "int8"]
# True while a batch is stored the careful way (staging + ON CONFLICT), after its direct COPY
# met rows another process stored meanwhile. A context variable: per thread, so the batches
# other threads store at the same time keep the direct way.
_STAGED = contextvars.ContextVar("edge_hub_pg_staged", default=False)


class _CopyRaced(Exception):
    """The direct COPY met the unique key: redo the whole batch staged."""


class PostgresStorage(
    TokensMixin,
    AlertsMixin,
    IngestMixin,
    PgRollupsMixin,
    ReadsMixin,
    ThresholdsMixin,
    AnomaliesMixin,
    CrudMixin,
    BulkMixin,
    ReportMixin,
    AuditMixin,
    SessionsMixin,
    SignInMixin,
    PgCatalog,
    PgLead,
):
    _BUCKET_START: ClassVar[str] = "floor(ts / ?) * ?"
    _LOCK_FOR_DELETE: ClassVar[str] = " FOR UPDATE"
    _TIER_BUCKET_START: ClassVar[str] = "floor(bucket / ?) * ?"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        super().__init__()
        database = parse_database(url)
        if database.engine != "postgresql":
            raise StorageError(f"not a PostgreSQL URL: {database.describe()}")
        self.url = database.target
        self.where = database.describe()
        self._pool = PgPool(database.target, self.where, max_size=pool_size)
        self._partitions = Partitions()

    def _reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]:
        return self._pool.reader(snapshot)

    def _write(self) -> AbstractContextManager[Conn]:
        return self._pool.write()

    # -- lifecycle ------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            return self._version(conn)

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int:
        present = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if present is None or present[0] is None:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        with self._pool.connection() as conn:
            # A session lock, held across the migrations' own transactions: a second hub
            # process waits here, then finds nothing left to do.
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                # Rows of releases before both engines shared one step list: once, here.
                renumber_old_rows(conn)
                steps = pending(MIGRATIONS, self._version(conn), self.where)
                for step in steps:
                    with conn.transaction():
                        step.apply(conn)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (step.version, step.name),
                        )
                self._partitions.ensure_ahead(conn, now())
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        return len(steps)

    def checkpoint(self) -> None:
        # Nothing to fold in: the server owns durability.
        return None

    def ping(self) -> bool:
        return bool(self._fetchone("SELECT 1")[0] == 1)

    def close(self) -> None:
        self.release_leads()
        self._pool.close()

    # -- ingest ---------------------------------------------------------------------------

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

    def store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert] = (),
    ) -> StoreResult:
        try:
            return self._store_batch(gateway_id, factory_id, readings, report, alerts)
        except _CopyRaced:
            staged = _STAGED.set(True)
            try:
                return self._store_batch(gateway_id, factory_id, readings, report, alerts)
            finally:
                _STAGED.reset(staged)

    def _store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert],
    ) -> StoreResult:
        self.before_readings([r.ts for r in readings])
        try:
            return super().store_batch(gateway_id, factory_id, readings, report, alerts)
        except psycopg.errors.CheckViolation as exc:
            # "no partition of relation readings found for row": a partition this process
            # believed in was dropped (retention) by another one. Reload and try once more.
            if "no partition" not in str(exc):
                raise
            self._partitions.forget()
            self.before_readings([r.ts for r in readings])
            return super().store_batch(gateway_id, factory_id, readings, report, alerts)

    def _lock_sensors(self, conn: Conn, sensor_ids: Sequence[int]) -> set[int]:
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

    def _queue_scans(self, conn: Conn, sensor_ids: Sequence[int]) -> None:
        # One statement for the whole list: a 1,000-sensor batch made 1,000 before.
        # WITH ORDINALITY keeps the caller's (sorted) order, the lock order.
        conn.execute(
            "INSERT INTO scan_queue (sensor_id) SELECT s FROM unnest(?::bigint[]) "
            "WITH ORDINALITY AS q(s, n) ORDER BY n ON CONFLICT DO NOTHING",
            (list(sensor_ids),),
        )

    def _insert_readings(self, conn: Conn, rows: list[ReadingRow]) -> int:
        assert isinstance(conn, PgConn)
        raw = conn.raw
        with raw.cursor() as cur:
            new = first_of_each(rows, _stored_ids(cur, rows))
            if not new:
                return 0
            if _STAGED.get():
                # Stage the batch and let INSERT ... ON CONFLICT DO NOTHING keep what is new
                # (ORDER BY id there: concurrent batches take index locks in one order).
                _copy(cur, "readings_in", rows)
                return insert_staged(cur, rows, self.maintain_rollups)
            try:
                # The usual case, a batch not stored before: straight into readings by one
                # binary COPY, the fastest way in.
                _copy(cur, "readings", new)
            except psycopg.errors.UniqueViolation as exc:
                # Another hub process stored some of these rows after the probe (module doc).
                raise _CopyRaced from exc
            if self.maintain_rollups:
                fold_rows(cur, new)  # the same transaction: stored means rolled up
        return len(new)


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

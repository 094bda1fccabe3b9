"""The SQLite engine: the default, one file next to the hub (see pool.py for connections)."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import ClassVar

from hub.storage.alerts import AlertsMixin
from hub.storage.anomalies import AnomaliesMixin
from hub.storage.audit import AuditMixin
from hub.storage.bulk import BulkMixin
from hub.storage.crud import CrudMixin
from hub.storage.ingest import IngestMixin, ReadingRow
from hub.storage.migrations import check_sequence, pending
from hub.storage.model import StorageError
from hub.storage.reads import ReadsMixin
from hub.storage.report import ReportMixin
from hub.storage.rollups import RollupsMixin, first_of_each, stored_ids
from hub.storage.sessions import SessionsMixin
from hub.storage.signin import SignInMixin
from hub.storage.sqlbase import Conn
from hub.storage.sqlite.catalog import SQLiteCatalog
from hub.storage.sqlite.lead import SQLiteLead, migration_lock
from hub.storage.sqlite.pool import SQLitePool
from hub.storage.sqlite.schema import LEGACY_VERSION, MIGRATIONS, heal_legacy
from hub.storage.thresholds import ThresholdsMixin
from hub.storage.tokens import TokensMixin
from hub.storage.url import parse_database

SCHEMA_VERSION = check_sequence(MIGRATIONS)


class SQLiteStorage(
    TokensMixin,
    AlertsMixin,
    IngestMixin,
    RollupsMixin,
    ReadsMixin,
    ThresholdsMixin,
    AnomaliesMixin,
    CrudMixin,
    BulkMixin,
    ReportMixin,
    AuditMixin,
    SessionsMixin,
    SignInMixin,
    SQLiteCatalog,
    SQLiteLead,
):
    # ts >= 0 always, so CAST (truncation) is floor here.
    _BUCKET_START: ClassVar[str] = "CAST(ts / ? AS INTEGER) * ?"
    _TIER_BUCKET_START: ClassVar[str] = "CAST(bucket AS INTEGER) / ? * ?"

    def __init__(self, target: str) -> None:
        """``target``: a sqlite:/// URL or a file path."""
        super().__init__()
        database = parse_database(target)
        if database.engine != "sqlite":
            raise StorageError(f"not an SQLite database: {database.describe()}")
        self.path = database.target
        self._pool = SQLitePool(self.path)
        self._own: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        """A connection of the caller's own, for tests and one-off tools: never one that
        requests use. Closed by :meth:`close`."""
        if self._own is None:
            self._own = self._pool.connect()
        return self._own

    def _reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]:
        return self._pool.reader(snapshot)

    def _write(self) -> AbstractContextManager[Conn]:
        return self._pool.write()

    def _insert_readings(self, conn: Conn, rows: list[ReadingRow]) -> int:
        # Only rows not stored yet are inserted and folded into the rollups, in this same
        # transaction (hub.storage.rollups): a re-sent (gateway, seq) counts nowhere twice.
        stored = stored_ids(conn, rows) if self.maintain_rollups else set()
        new = first_of_each(rows, stored) if stored else rows
        cur = conn.executemany(
            "INSERT OR IGNORE INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            new,
        )
        if cur.rowcount != len(new):
            # The batch names a seq twice: the insert kept the first of each.
            new = first_of_each(new, set())
        if self.maintain_rollups and cur.rowcount != len(new):
            raise StorageError(f"stored {cur.rowcount} of {len(new)} new readings; rolled back")
        self._fold(conn, new)
        return cur.rowcount

    # -- lifecycle ------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._pool.reader() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        # Processes starting at once queue on a lock file; inside, BEGIN IMMEDIATE takes
        # SQLite's write lock before the version is read, against a hub already running.
        with migration_lock(self.path), self._pool.write() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            steps = pending(MIGRATIONS, current, self.path)
            if steps and current <= LEGACY_VERSION:
                heal_legacy(conn)
            for step in steps:
                step.apply(conn)
            if steps:
                conn.execute(f"PRAGMA user_version={steps[-1].version}")
        return len(steps)

    def checkpoint(self) -> None:
        self._pool.checkpoint()

    def ping(self) -> bool:
        return bool(self._fetchone("SELECT 1")[0] == 1)

    def close(self) -> None:
        self.release_leads()
        self._own = None
        self._pool.close()

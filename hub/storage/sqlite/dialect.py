"""How SQLite differs: integer-cast buckets, INSERT OR IGNORE of readings with the fold in
Python-prepared upserts, dbstat for table sizes, flock leads, sqlite_master for copy-data."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

from hub.storage.dialect import Dialect, Fold
from hub.storage.model import ReadingRow, StorageError
from hub.storage.sqlbase import Conn, Database
from hub.storage.sqlite.catalog import primary_key, table_columns
from hub.storage.sqlite.lead import FileLeads
from hub.storage.tiers import first_of_each, stored_ids


class SQLiteDialect(Dialect):
    # ts >= 0 always, so CAST (truncation) is floor here.
    bucket_start: ClassVar[str] = "CAST(ts / ? AS INTEGER) * ?"
    tier_bucket_start: ClassVar[str] = "CAST(bucket AS INTEGER) / ? * ?"
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.IntegrityError,)

    def __init__(self, db: Database, path: str) -> None:
        super().__init__(db)
        self._leads = FileLeads(path)

    def insert_readings(self, conn: Conn, rows: list[ReadingRow], rollups: Fold) -> int:
        # Only rows not stored yet are inserted and folded into the rollups, in this same
        # transaction (hub.storage.rollups): a re-sent (gateway, seq) counts nowhere twice.
        stored = stored_ids(conn, rows) if rollups.maintain else set()
        new = first_of_each(rows, stored) if stored else rows
        cur = conn.executemany(
            "INSERT OR IGNORE INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            new,
        )
        if cur.rowcount != len(new):
            # The batch names a seq twice: the insert kept the first of each.
            new = first_of_each(new, set())
        if rollups.maintain and cur.rowcount != len(new):
            raise StorageError(f"stored {cur.rowcount} of {len(new)} new readings; rolled back")
        rollups.fold(conn, new)
        return cur.rowcount

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def table_bytes(self, conn: Conn, table: str) -> int | None:
        # SQLite's dbstat table, when the library is built with it.
        names = [
            table,
            *(
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
                ).fetchall()
            ),
        ]
        marks = ", ".join("?" * len(names))
        try:
            row = conn.execute(
                f"SELECT sum(pgsize) FROM dbstat WHERE aggregate = TRUE AND name IN ({marks})",
                names,
            ).fetchone()
        except Exception:  # no such table: dbstat (not compiled in)
            return None
        return None if row is None or row[0] is None else int(row[0])

    # SQLite: one hub process per database file, and every step of a job is a bounded write
    # transaction, so a second runner of exclusive_job would only repeat the same steps (the
    # base class's yield True).

    def try_lead(self, job: str) -> bool:
        return self._leads.try_lead(job)

    def release_leads(self) -> None:
        self._leads.release_leads()

    def table_columns(self) -> dict[str, list[str]]:
        return table_columns(self.db)

    def primary_key(self, table: str) -> list[str]:
        return primary_key(self.db, table)

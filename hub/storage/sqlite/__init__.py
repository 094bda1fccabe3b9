"""The SQLite engine: the default, one file next to the hub (see pool.py for connections)."""

from __future__ import annotations

import sqlite3

from hub.storage.interface import Storage
from hub.storage.migrations import check_sequence, pending
from hub.storage.model import StorageError
from hub.storage.sqlbase import Database
from hub.storage.sqlite.dialect import SQLiteDialect
from hub.storage.sqlite.lead import migration_lock
from hub.storage.sqlite.pool import SQLitePool
from hub.storage.sqlite.schema import LEGACY_VERSION, MIGRATIONS, heal_legacy
from hub.storage.url import parse_database

SCHEMA_VERSION = check_sequence(MIGRATIONS)


class SQLiteStorage(Storage):
    def __init__(self, target: str) -> None:
        """``target``: a sqlite:/// URL or a file path."""
        database = parse_database(target)
        if database.engine != "sqlite":
            raise StorageError(f"not an SQLite database: {database.describe()}")
        self.path = database.target
        self._pool = SQLitePool(self.path)
        self._own: sqlite3.Connection | None = None
        db = Database(self._pool)
        self._assemble(db, SQLiteDialect(db, self.path))

    @property
    def conn(self) -> sqlite3.Connection:
        """A connection of the caller's own, for tests and one-off tools: never one that
        requests use. Closed by :meth:`close`."""
        if self._own is None:
            self._own = self._pool.connect()
        return self._own

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

    def close(self) -> None:
        self.dialect.release_leads()
        self._own = None
        self._pool.close()

"""The PostgreSQL engine (psycopg 3 + psycopg_pool), for sites that outgrow one hub box: its
connections (pool.py), day partitions of readings (partitions.py), and what it does
differently (dialect.py: COPY ingest, partition retention, advisory locks).

Schema changes run as numbered migrations under a session advisory lock, so hub processes
starting at once migrate the database exactly once and the others wait for it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from hub.storage.interface import Storage
from hub.storage.migrations import check_sequence, pending
from hub.storage.model import StorageError, Waits
from hub.storage.postgres.dialect import PgDialect
from hub.storage.postgres.grafana import GrafanaRole, grant_reader
from hub.storage.postgres.partitions import Partitions
from hub.storage.postgres.pool import PgPool
from hub.storage.postgres.reach import check_primary
from hub.storage.postgres.replica import ReplicaPool
from hub.storage.postgres.schema import MIGRATIONS, renumber_old_rows
from hub.storage.sqlbase import Database
from hub.storage.url import parse_database
from shared.timeutil import now

SCHEMA_VERSION = check_sequence(MIGRATIONS)
# pg_advisory_lock key for migrations ("edgemigr").
MIGRATE_LOCK = 0x656467656D696772


class PostgresStorage(Storage):
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        waits: Waits | None = None,
        read_url: str | None = None,
    ) -> None:
        """``read_url``: the read database (hub.storage.postgres.replica) for history reads."""
        database = parse_database(url)
        if database.engine != "postgresql":
            raise StorageError(f"not a PostgreSQL URL: {database.describe()}")
        self.url = database.target
        self.where = database.describe()
        self._pool = PgPool(database.target, self.where, max_size=pool_size, waits=waits)
        self._replica: ReplicaPool | None = None
        history = None
        if read_url is not None:
            reader = parse_database(read_url)
            if reader.engine != "postgresql":
                raise StorageError(f"read_database: not a PostgreSQL URL: {reader.describe()}")
            self._replica = ReplicaPool(reader.target, reader.describe(), self._pool, pool_size)
            history = Database(self._replica)
        self._partitions = Partitions()
        db = Database(self._pool)
        self._assemble(db, PgDialect(db, self._pool, self._partitions, self.url), history)

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

    def grafana_role(self, name: str, password: str) -> GrafanaRole:
        """Grafana's login role ``name``: it reads the grafana_* views and nothing else
        (hub.storage.postgres.grafana); made, or its password set when it exists."""
        with self._pool.connection() as conn:
            return grant_reader(conn, name, password)

    def ping(self) -> bool:
        """A new session to a writable primary, as the pool would open it now (raises
        DatabaseUnavailable naming the hosts tried): a pool still holding connections to a
        primary that was cut off would say yes for a while longer."""
        check_primary(self.url, self._pool.waits)
        return True

    def read_lag(self) -> float | None:
        return None if self._replica is None else self._replica.lag_s()

    def checkpoint(self) -> None:
        # Nothing to fold in: the server owns durability.
        return None

    def close(self) -> None:
        self.dialect.release_leads()
        if self._replica is not None:
            self._replica.close()
        self._pool.close()

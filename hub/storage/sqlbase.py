"""What the SQL engines share: connection shapes, row helpers and per-process state.

The statements in the mixins (tokens, ingest, reads, thresholds, anomalies) are written once,
in the SQL that SQLite and PostgreSQL both speak (``ON CONFLICT``, ``RETURNING``, ``TRUE``),
with ``?`` placeholders; the PostgreSQL engine hands its driver ``%s`` instead. What the
engines do differently (connections, schema, bulk insert of readings, time buckets) each
engine implements itself.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from hub.storage.interface import Storage


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """The part of a DB-API connection the shared statements use (sqlite3 has it as is)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Cursor: ...


def row_dict(cursor: Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {col[0]: row[i] for i, col in enumerate(cursor.description)}


def dicts(cursor: Cursor) -> list[dict[str, Any]]:
    return [row_dict(cursor, row) for row in cursor.fetchall()]


class SqlStorage(Storage):
    def __init__(self) -> None:
        # factory_id -> {sensor key -> sensor id}. Entries are added only after the
        # transaction that made them commits, and checked by every batch that uses them
        # (IngestMixin._resolve_sensors): a sensor may be deleted by any hub process.
        self._sensor_cache: dict[int, dict[str, int]] = {}
        # Kept for callers that forget a deleted sensor; the scan queue is in the database.
        self._touch_lock = threading.Lock()
        self._touched: dict[int, int] = {}

    # -- what each engine provides -------------------------------------------------------

    @abstractmethod
    def _reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]:
        """A connection for reads, this call's alone until it returns. ``snapshot``: every
        statement inside sees the same committed state (one read transaction)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Conn]:
        """A connection inside a write transaction: committed when the block ends, rolled
        back if it raises."""

    # -- the catalog, for copy-data (each engine's catalog.py) ----------------------------

    # Appended to the SELECT with which a sensor's deletion starts, to take the row lock that
    # _lock_sensors waits for (PostgreSQL); SQLite's one writer already excludes the rest.
    _LOCK_FOR_DELETE: ClassVar[str] = ""

    # The driver's errors for a broken UNIQUE/CHECK/foreign key constraint.
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = ()

    @abstractmethod
    def table_columns(self) -> dict[str, list[str]]:
        """Every table of the hub's schema (none of the engine's own) and its columns."""

    @abstractmethod
    def primary_key(self, table: str) -> list[str]: ...

    def converters(self, table: str) -> dict[str, Callable[[Any], Any]]:
        """Per column, how a value read from another engine is stored here (0/1 -> bool)."""
        return {}

    def before_readings(self, ts_values: Sequence[float]) -> None:
        """Make storage ready for readings at these times (PostgreSQL: their partitions)."""

    def after_copy(self) -> None:
        """Rows arrived with their ids: let new rows get ids after them."""

    def _lock_sensors(self, conn: Conn, sensor_ids: Sequence[int]) -> set[int]:
        """Inside a write transaction that stores rows for ``sensor_ids``: which of them
        exist, each held until the commit so that no deletion of it can run in between
        (rows written for a sensor deleted meanwhile would outlive it, unseen by any read).
        SQLite needs no lock for that: its one writer at a time is this transaction."""
        found: set[int] = set()
        for i in range(0, len(sensor_ids), 500):
            part = list(sensor_ids[i : i + 500])
            marks = ", ".join("?" * len(part))
            rows = conn.execute(f"SELECT id FROM sensors WHERE id IN ({marks})", part)
            found.update(int(r[0]) for r in rows.fetchall())
        return found

    # -- helpers over _reader ------------------------------------------------------------

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchone()

    def _all_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._reader() as conn:
            return dicts(conn.execute(sql, params))

    def _one_dict(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        with self._reader() as conn:
            cur = conn.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else row_dict(cur, row)

    def _touch(self, sensor_ids: Iterator[int] | set[int]) -> None:
        """Queue sensors for the anomaly scan (writes that do not queue in their own
        transaction, as ingest does)."""
        ids = sorted(set(sensor_ids))
        if ids:
            with self._write() as conn:
                self._queue_scans(conn, ids)

    def _queue_scans(self, conn: Conn, sensor_ids: Sequence[int]) -> None:
        """Queue ``sensor_ids`` for the anomaly scan in ``conn``'s transaction; a sensor
        queued already costs an index probe (DO NOTHING takes no lock). In the order given:
        callers pass them sorted, so concurrent transactions lock alike. In-process SQLite
        runs one prepared statement per sensor; PostgreSQL overrides this with one statement."""
        conn.executemany(
            "INSERT INTO scan_queue (sensor_id) VALUES (?) ON CONFLICT DO NOTHING",
            [(s,) for s in sensor_ids],
        )

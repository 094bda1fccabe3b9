"""What every concern of storage is built on: connection shapes, row helpers, and
:class:`Database`, the engine's pool seen as read and write transactions.

The statements are written once, in the SQL that SQLite and PostgreSQL both speak (``ON
CONFLICT``, ``RETURNING``, ``TRUE``), with ``?`` placeholders; the PostgreSQL pool hands its
driver ``%s`` instead. What the engines do differently lives in their dialect
(hub.storage.dialect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


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


class Pool(Protocol):
    """An engine's connections (sqlite/pool.py, postgres/pool.py)."""

    def reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]: ...

    def write(self) -> AbstractContextManager[Conn]: ...

    def write_one(self, sql: str, params: Sequence[Any]) -> int: ...


def row_dict(cursor: Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {col[0]: row[i] for i, col in enumerate(cursor.description)}


def dicts(cursor: Cursor) -> list[dict[str, Any]]:
    return [row_dict(cursor, row) for row in cursor.fetchall()]


class Database:
    """The database handle every concern gets: transactions, and one-statement reads."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]:
        """A connection for reads, this call's alone until it returns. ``snapshot``: every
        statement inside sees the same committed state (one read transaction)."""
        return self._pool.reader(snapshot)

    def write(self) -> AbstractContextManager[Conn]:
        """A connection inside a write transaction: committed when the block ends, rolled
        back if it raises."""
        return self._pool.write()

    def write_one(self, sql: str, params: Sequence[Any]) -> int:
        """One write statement as a transaction of its own; how many rows it changed. On
        PostgreSQL one round trip (the pool's connections are in autocommit), where
        :meth:`write` adds a BEGIN and a COMMIT."""
        return self._pool.write_one(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.reader() as conn:
            return conn.execute(sql, params).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.reader() as conn:
            return conn.execute(sql, params).fetchone()

    def all_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.reader() as conn:
            return dicts(conn.execute(sql, params))

    def one_dict(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        with self.reader() as conn:
            cur = conn.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else row_dict(cur, row)

    def ping(self) -> bool:
        return bool(self.fetchone("SELECT 1")[0] == 1)


def oldest_in(conn: Conn, table: str, column: str) -> float | None:
    """The smallest ``column`` of ``table``, per sensor along the (sensor_id, time) index: a
    min() over the whole table would read all of it."""
    row = conn.execute(
        f"SELECT min(m) FROM (SELECT (SELECT min({column}) FROM {table} t "
        "WHERE t.sensor_id = s.id) AS m FROM sensors s) x"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def expire_rows(
    db: Database, table: str, column: str, key: str, op: str, cutoff: float, max_rows: int
) -> int:
    """Delete at most ``max_rows`` rows of ``table`` whose ``column`` ``op`` ``cutoff``, in one
    short transaction, sensor by sensor along the (sensor_id, time) index (no index on time
    alone is needed); returns how many went (0: nothing older is left)."""
    left = max_rows
    with db.write() as conn:
        sensors = [r[0] for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
        for sensor_id in sensors:
            found = conn.execute(
                f"SELECT {key} FROM {table} WHERE sensor_id = ? AND {column} {op} ? "
                f"ORDER BY {column} LIMIT ?",
                (sensor_id, cutoff, left),
            ).fetchall()
            if found:
                conn.executemany(
                    f"DELETE FROM {table} WHERE sensor_id = ? AND {key} = ?",
                    [(sensor_id, r[0]) for r in found],
                )
                left -= len(found)
                if left <= 0:
                    break
    return max_rows - left


def time_range(sensor_id: int, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    # Half-open [from, to): adjacent windows never count a reading twice.
    sql = "sensor_id = ?"
    params: list[Any] = [sensor_id]
    if start is not None:
        sql += " AND ts >= ?"
        params.append(start)
    if end is not None:
        sql += " AND ts < ?"
        params.append(end)
    return sql, params

"""``edge-hub copy-data``: every row of one hub database into another (SQLite -> PostgreSQL).

Rows keep their ids, so references between tables (and reading ids, which are built from
the gateway's id) stay true, and a re-run finds what an earlier one copied: other tables
are upserted on their primary key, readings go through the destination engine's own ingest
insert (``ON CONFLICT DO NOTHING``), so a reading is never doubled and the destination's
derived data (rollups) counts each one once. Tokens are copied as their hashes: every
gateway's and operator's token keeps working against the new database.

The destination must be empty or a previous copy of this source: a row that clashes with
different data (another factory of the same name under another id) stops the copy with a
clear error; each chunk is one transaction, so what was copied before it stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.storage.interface import Storage
from hub.storage.model import ReadingRow, StorageError

# In this order, parents before the tables that reference them; every other table after.
FIRST = ("factories", "gateways", "machines", "sensors", "tokens", "users")
# Rebuilt by the destination as readings arrive (and never copied, or they would count twice).
DERIVED = frozenset({"readings", "rollup_1m", "rollup_1h", "rollup_12h", "retention_status"})
CHUNK = 50_000


@dataclass
class CopyReport:
    tables: dict[str, int] = field(default_factory=dict)
    readings_seen: int = 0
    readings_new: int = 0


def _ordered(tables: set[str]) -> list[str]:
    head = [t for t in FIRST if t in tables]
    return head + sorted(tables - set(head))


def copy_data(
    src: Storage, dst: Storage, progress: Callable[[str], None] = lambda _: None
) -> CopyReport:
    """Copy every table of ``src`` into ``dst`` (both migrated to this release's schema)."""
    report = CopyReport()
    src_tables = set(src.dialect.table_columns())
    dst_columns = dst.dialect.table_columns()
    missing = src_tables - set(dst_columns)
    if missing:
        raise StorageError(f"the destination has no table {', '.join(sorted(missing))}")
    for table in _ordered(src_tables - DERIVED):
        columns = src.dialect.table_columns()[table]
        key = src.dialect.primary_key(table)
        converters = dst.dialect.converters(table)
        count = 0
        cols = ", ".join(f'"{c}"' for c in columns)
        for rows in _chunks_on(src, table, key[0], cols, CHUNK, whole=len(key) > 1):
            values = [
                tuple(converters.get(c, _same)(v) for c, v in zip(columns, row, strict=True))
                for row in rows
            ]
            upsert_rows(dst, table, columns, key, values)
            count += len(values)
        report.tables[table] = count
        progress(f"{table}: {count} rows")
    if "readings" in src_tables:
        for rows in _chunks_on(
            src, "readings", "id", "id, sensor_id, ts, value, gateway_id, seq", CHUNK
        ):
            report.readings_new += insert_reading_rows(dst, [tuple(r) for r in rows])
            report.readings_seen += len(rows)
            progress(f"readings: {report.readings_seen} copied, {report.readings_new} new")
    dst.dialect.after_copy()
    return report


def _same(value: Any) -> Any:
    return value


def upsert_rows(
    dst: Storage,
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Insert ``rows``, or update the row with the same primary key, in one transaction."""
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    others = [c for c in columns if c not in key]
    conflict = ", ".join(f'"{c}"' for c in key)
    action = (
        "DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in others)
        if others
        else "DO NOTHING"
    )
    try:
        with dst.db.write() as conn:
            conn.executemany(
                f'INSERT INTO "{table}" ({cols}) VALUES ({marks}) '
                f"ON CONFLICT ({conflict}) {action}",
                rows,
            )
    except dst.dialect.integrity_errors as exc:
        raise StorageError(
            f"cannot copy table {table}: the destination holds different data ({exc}). "
            "Copy into an empty database, or into the one an earlier copy-data of this "
            "source made."
        ) from None


def insert_reading_rows(dst: Storage, rows: list[ReadingRow]) -> int:
    """Store reading rows as ingest does (partitions, rollups, each id once); returns how
    many were new."""
    dst.dialect.before_readings([r[2] for r in rows])
    with dst.db.write() as conn:
        return dst.ingest.insert_rows(conn, rows)


def _chunks_on(
    src: Storage, table: str, key: str, cols: str, size: int, whole: bool = False
) -> Iterator[list[Any]]:
    """Rows of ``table`` in ``key`` order, ``size`` at a time (keyset paging: each chunk is
    one short read, however large the table); ``whole``: all at once (a composite key,
    which one column cannot page)."""
    after: Any = None
    while True:
        with src.db.reader() as conn:
            if whole:
                yield conn.execute(f'SELECT {cols} FROM "{table}"').fetchall()
                return
            if after is None:
                rows = conn.execute(
                    f'SELECT {cols} FROM "{table}" ORDER BY "{key}" LIMIT ?', (size,)
                ).fetchall()
            else:
                rows = conn.execute(
                    f'SELECT {cols} FROM "{table}" WHERE "{key}" > ? ORDER BY "{key}" LIMIT ?',
                    (after, size),
                ).fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][cols_index(cols, key)]


def cols_index(cols: str, key: str) -> int:
    names = [c.strip().strip('"') for c in cols.split(",")]
    return names.index(key)

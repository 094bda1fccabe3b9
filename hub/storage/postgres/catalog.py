"""What copy-data asks of a PostgreSQL database: tables, columns, keys and types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.storage.sqlbase import Database

_PUBLIC = "table_schema = current_schema()"


def _bool(value: Any) -> Any:
    return None if value is None else bool(value)


def table_columns(db: Database) -> dict[str, list[str]]:
    # Partitions of readings are not tables of the schema, nor are views (Grafana's read
    # the tables); schema_migrations is the engine's own bookkeeping.
    rows = db.fetchall(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN pg_class k ON k.relname = c.table_name AND NOT k.relispartition "
        "AND k.relkind IN ('r', 'p') "
        "JOIN pg_namespace n ON n.oid = k.relnamespace AND n.nspname = c.table_schema "
        f"WHERE c.{_PUBLIC} AND c.table_name <> 'schema_migrations' "
        "ORDER BY c.table_name, c.ordinal_position"
    )
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(str(table), []).append(str(column))
    return tables


def primary_key(db: Database, table: str) -> list[str]:
    rows = db.fetchall(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
        "WHERE i.indrelid = ?::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (table,),
    )
    return [str(r[0]) for r in rows]


def converters(db: Database, table: str) -> dict[str, Callable[[Any], Any]]:
    rows = db.fetchall(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE {_PUBLIC} AND table_name = ? AND data_type = 'boolean'",
        (table,),
    )
    return {str(r[0]): _bool for r in rows}


def after_copy(db: Database) -> None:
    # Identity columns were given explicit ids: move each sequence past the largest.
    rows = db.fetchall(
        "SELECT table_name, column_name FROM information_schema.columns "
        f"WHERE {_PUBLIC} AND is_identity = 'YES'"
    )
    with db.write() as conn:
        for table, column in rows:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
                f'coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)'
            )

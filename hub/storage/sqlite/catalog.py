"""What copy-data asks of an SQLite database: its tables, columns and keys."""

from __future__ import annotations

from hub.storage.sqlbase import Database


def table_columns(db: Database) -> dict[str, list[str]]:
    with db.reader() as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        ]
        return {
            t: [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{t}")').fetchall()]
            for t in tables
        }


def primary_key(db: Database, table: str) -> list[str]:
    with db.reader() as conn:
        rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    # Column 5 is the column's position in the key (0: not in it).
    return [str(r[1]) for r in sorted(rows, key=lambda r: r[5]) if r[5] > 0]

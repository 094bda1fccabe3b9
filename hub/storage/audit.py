"""The change log's own reads and writes (what a row holds, and how one is written inside a
change's transaction: hub.storage.changelog)."""

from __future__ import annotations

import json
from typing import Any

from hub.storage.changelog import Actor, AuditEntry, Who, write_entry
from hub.storage.sqlbase import Database, dicts

__all__ = ["Actor", "Audit", "AuditEntry", "Who", "write_entry"]


def _view(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.pop("detail")
    row["detail"] = None if detail is None else json.loads(detail)
    return row


class Audit:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_audit(self, entry: AuditEntry) -> None:
        """Record a change that storage already committed (one short write of its own)."""
        with self._db.write() as conn:
            write_entry(conn, entry)

    def audit_page(
        self,
        offset: int,
        limit: int,
        *,
        target: str | None = None,
        target_id: str | None = None,
        token_id: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows newest first, ``limit`` from ``offset``, and how many match in all."""
        where: list[str] = []
        params: list[Any] = []
        for sql, value in (
            ("target = ?", target),
            ("target_id = ?", target_id),
            ("token_id = ?", token_id),
            ("at >= ?", start),
            ("at < ?", end),
        ):
            if value is not None:
                where.append(sql)
                params.append(value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self._db.reader(snapshot=True) as conn:
            total = int(
                conn.execute(f"SELECT count(*) FROM audit_log{clause}", params).fetchone()[0]
            )
            rows = dicts(
                conn.execute(
                    "SELECT id, at, token_id, role, action, target, target_id, detail "
                    f"FROM audit_log{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return [_view(r) for r in rows], total

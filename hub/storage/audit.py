"""The change log's own reads and writes (what a row holds, and how one is written inside a
change's transaction: hub.storage.changelog)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from hub.storage.changelog import Actor, AuditEntry, Who, write_entry
from hub.storage.selects import within
from hub.storage.sqlbase import Database, dicts

__all__ = ["Actor", "Audit", "AuditEntry", "Who", "write_entry"]


# The factory of an audit row's target, for the kinds of target a factory owns. An entry
# about something since deleted, or about no one factory (a back-fill, accounts), has none.
_TARGET_FACTORY = (
    "CASE audit_log.target "
    "WHEN 'factory' THEN (SELECT f.id FROM factories f WHERE f.id = {id}) "
    "WHEN 'machine' THEN (SELECT m.factory_id FROM machines m WHERE m.id = {id}) "
    "WHEN 'sensor' THEN (SELECT s.factory_id FROM sensors s WHERE s.id = {id}) "
    "WHEN 'alert' THEN (SELECT a.factory_id FROM alerts a WHERE a.id = {id}) "
    "WHEN 'rule' THEN (SELECT s.factory_id FROM alert_rules r JOIN sensors s "
    "ON s.id = r.sensor_id WHERE r.id = {id}) "
    "END"
).format(id="CAST(audit_log.target_id AS BIGINT)")  # these targets' ids are numbers


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
        factories: Collection[int] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Audit rows newest first, ``limit`` from ``offset``, and how many match in all;
        ``factories``: only rows about things of these factories (None: every row)."""
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
        if factories is not None:
            condition, ids = within(_TARGET_FACTORY, factories)
            where.append(condition)
            params.extend(ids)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self._db.reader(snapshot=True) as conn:
            total = int(
                conn.execute(f"SELECT count(*) FROM audit_log{clause}", params).fetchone()[0]
            )
            rows = dicts(
                conn.execute(
                    "SELECT id, at, token_id, role, by_kind, by_name, by_display, action, "
                    "target, target_id, detail "
                    f"FROM audit_log{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return [_view(r) for r in rows], total

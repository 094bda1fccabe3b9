"""The change log (invariant 9, "operators are accountable"): every change a person's token
makes (CRUD of the model, thresholds, alert rules, acknowledge, shelve) is one row with the
token's id and role, the time, what was done to what, and the change itself.

A change and its audit row commit together: :func:`write_entry` takes the connection of the
change's own write transaction, so there is never a change without its row or a row
without its change. :meth:`AuditMixin.record_audit` is for a change that was already
committed by storage code that knows nothing of tokens (it writes the row on its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from hub.storage.sqlbase import Conn, SqlStorage, dicts
from shared.timeutil import now

# Bounds on what one row holds: the change itself is small (a PATCH body, a comment), and a
# log that anyone with an admin token can grow by megabytes per request is a disk problem.
MAX_DETAIL_BYTES = 16_384


class Who(Protocol):
    """Who made a change: the token (its id, never the secret) and the role it had. Any
    object with these two (an :class:`Actor`, hub.auth's Principal, the alert lifecycle's
    actor) will do."""

    @property
    def token_id(self) -> int | None: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Actor:
    token_id: int | None
    role: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: Who
    action: str  # e.g. factory.create, sensor.thresholds, rule.update, alert.ack
    target: str  # the kind of thing changed: factory, machine, sensor, rule, alert, reading
    target_id: str | None
    detail: dict[str, Any] | None = None


def _detail_text(detail: dict[str, Any] | None) -> str | None:
    if detail is None:
        return None
    text = json.dumps(detail, sort_keys=True, default=str, ensure_ascii=False)
    if len(text.encode("utf-8")) > MAX_DETAIL_BYTES:
        # Which fields were changed stays readable even when their values do not fit.
        text = json.dumps({"truncated": True, "fields": sorted(detail)}, ensure_ascii=False)
    return text


def write_entry(conn: Conn, entry: AuditEntry, at: float | None = None) -> None:
    """Record ``entry`` inside the caller's write transaction (it commits with the change)."""
    conn.execute(
        "INSERT INTO audit_log (at, token_id, role, action, target, target_id, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            now() if at is None else at,
            entry.actor.token_id,
            entry.actor.role,
            entry.action,
            entry.target,
            entry.target_id,
            _detail_text(entry.detail),
        ),
    )


def _view(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.pop("detail")
    row["detail"] = None if detail is None else json.loads(detail)
    return row


class AuditMixin(SqlStorage):
    def record_audit(self, entry: AuditEntry) -> None:
        """Record a change that storage already committed (one short write of its own)."""
        with self._write() as conn:
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
        with self._reader(snapshot=True) as conn:
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

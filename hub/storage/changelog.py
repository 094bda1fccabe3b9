"""The change log (invariant 9, "operators are accountable"): every change a person's token
makes (CRUD of the model, thresholds, alert rules, acknowledge, shelve) is one row with the
token's id and role, the time, what was done to what, and the change itself.

A change and its audit row commit together: :func:`write_entry` takes the connection of the
change's own write transaction, so there is never a change without its row or a row
without its change. :meth:`hub.storage.audit.Audit.record_audit` is for a change that was already
committed by storage code that knows nothing of tokens (it writes the row on its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from hub.storage.sqlbase import Conn
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

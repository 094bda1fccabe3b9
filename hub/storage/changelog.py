"""The change log (invariant 9, "operators are accountable"): every change a person or a token
makes (CRUD of the model, thresholds, alert rules, acknowledge, shelve, people's accounts) is
one row with who acted (kind, name, display name, role, token id), the time, what was done to
what, and the change itself.

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
    """Who made a change: its kind (user, token, gateway, system), the token (its id, never
    the secret), the role it had, and the name and display name it went by. Any object with
    these (an :class:`Actor`, hub.auth's Principal) will do."""

    @property
    def token_id(self) -> int | None: ...

    @property
    def role(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def display(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, as the journal and the change log keep it: a copy taken at the time of the
    act, so a person renamed or removed later still reads as they were then."""

    token_id: int | None
    role: str
    kind: str = "token"
    name: str | None = None
    display: str | None = None


SYSTEM = Actor(None, "system", "system")


def actor_of(who: Who) -> Actor:
    """``who`` as stored. A person's acts carry no token id (their credential is a session,
    not a token anyone could revoke by id); a gateway's name is the one it syncs as."""
    name = who.name
    if name is None and who.kind == "gateway":
        name = getattr(who, "gateway_name", None)
    token_id = None if who.kind == "user" else who.token_id
    return Actor(token_id, who.role, who.kind, name, who.display)


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
    who = actor_of(entry.actor)
    conn.execute(
        "INSERT INTO audit_log (at, token_id, role, by_kind, by_name, by_display, action, "
        "target, target_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now() if at is None else at,
            who.token_id,
            who.role,
            who.kind,
            who.name,
            who.display,
            entry.action,
            entry.target,
            entry.target_id,
            _detail_text(entry.detail),
        ),
    )

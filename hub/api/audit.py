"""Operators are accountable (invariant 9): the change log's API.

Every change made with a person's token (CRUD of the model, thresholds, alert rules,
acknowledge, shelve, bulk back-fill) is recorded with the token's id and role and the time:

* storage code that changes something for a token records it in the same transaction with
  ``hub.storage.audit.write_entry(conn, entry(principal, ...))``;
* a handler whose storage call knows nothing of tokens calls :func:`record` once the change
  is committed.

``GET /api/v1/audit`` (admin) lists the log newest first, paged, filtered by ``target``,
``target_id``, ``token_id`` and ``from``/``to``.
"""

from __future__ import annotations

from typing import Any

from hub.alert_view import by_view
from hub.api import readcost
from hub.api.http import API, Ctx, Raw, Route, Services, charged
from hub.api.pagination import paged, parse_page
from hub.api.queries import optional_id, parse_range
from hub.api.scope import LISTED
from hub.errors import bad_param
from hub.storage import Storage
from hub.storage.audit import AuditEntry, Who
from shared.timeutil import to_rfc3339

MAX_FILTER_LEN = 128


def entry(
    who: Who,
    action: str,
    target: str,
    target_id: object = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """One change by ``who`` (a Principal, or anything with token_id and role)."""
    return AuditEntry(who, action, target, None if target_id is None else str(target_id), detail)


def record(
    storage: Storage,
    who: Who,
    action: str,
    target: str,
    target_id: object = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a change that is already committed (e.g. ``rule.update``, ``alert.ack``)."""
    storage.record_audit(entry(who, action, target, target_id, detail))


def entry_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": to_rfc3339(row["at"]),
        "by": by_view(
            row["token_id"], row["role"], row["by_kind"], row["by_name"], row["by_display"]
        ),
        "action": row["action"],
        "target": row["target"],
        "target_id": row["target_id"],
        "detail": row["detail"],
    }


def _text(params: dict[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_FILTER_LEN or not raw.isprintable():
        raise bad_param(name, f"must be printable and at most {MAX_FILTER_LEN} characters")
    return raw


def list_audit(storage: Storage, ctx: Ctx) -> Raw:
    params = ctx.params
    start, end = parse_range(params)
    page = parse_page(params)
    rows, total = storage.audit_page(
        page.offset,
        page.limit,
        target=_text(params, "target"),
        target_id=_text(params, "target_id"),
        token_id=optional_id(params, "token_id"),
        start=start,
        end=end,
        factories=ctx.scope,
    )
    return paged(ctx, [entry_view(r) for r in rows], page, total)


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_audit(ctx: Ctx) -> Any:
        """The change log: who changed what and when, newest first (admins)."""
        return list_audit(storage, ctx)

    return [Route("GET", f"{API}/audit", ("admin",), h_audit, charged(readcost.page), LISTED)]

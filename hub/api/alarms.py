"""The alert lifecycle people work with: active or cleared, x acknowledged or not, shelved.

* An alert is raised at the edge (threshold, rate of change, the hub's rules) and arrives in a
  sync batch; storage makes the edge alerts of one sensor active at once ONE fleet alert
  (hub.storage.alarm_sources) whose severity, on one scale (hub.storage.severity), moves in
  place (escalated / de-escalated) and which clears when the last of them clears. A gateway silent
  for ``[alerts] gateway_offline_after_s`` is ONE alert of kind ``gateway_offline``; its
  sensors are marked ``stale`` instead of raising alerts of their own.
* People acknowledge and shelve (with a comment) with an operator or admin token. A shelve
  is timed (at most :data:`MAX_SHELVE_S`) and runs out by itself: an alert whose
  ``shelved_until`` has passed reads as not shelved at once, and the worker journals the
  expiry.
* Every transition is journaled with who (kind, name, display name, role, token id), when,
  and the comment.

This module parses requests and shapes answers; storage does the state changes, each in
one transaction with its journal entry and webhook event.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from hub.alert_view import alert_view, journal_view
from hub.api.pagination import PageRequest, parse_page
from hub.api.queries import optional_id, parse_id
from hub.auth import Principal
from hub.errors import ApiError, bad_param, not_found
from hub.storage import Conflict, Storage
from hub.storage.alerts import Actor, AlertFilter
from hub.storage.changelog import actor_of
from shared.text import text_problem
from shared.timeutil import now

MAX_SHELVE_S = 7 * 86400.0
# Transitions an alert object carries (the newest); all of them are paged at /journal.
JOURNAL_IN_ALERT = 100
MAX_COMMENT = 2000
STATES = ("active", "cleared")
KINDS = ("threshold", "rule", "rate_of_change", "gateway_offline")
SEVERITIES = ("info", "medium", "warning", "high", "critical")

Result = tuple[Any, dict[str, Any]]


# -- reading ----------------------------------------------------------------------------


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value not in allowed:
        raise bad_param(name, f"must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise bad_param(name, f"must be true or false, got {raw!r}")
    return value in ("true", "1")


def parse_filter(params: Mapping[str, str], factories: frozenset[int] | None = None) -> AlertFilter:
    gateway = params.get("gateway_id") or None
    if gateway is not None and len(gateway) > 128:
        raise bad_param("gateway_id", "must be at most 128 characters")
    return AlertFilter(
        state=_choice(params, "state", STATES),
        acknowledged=_flag(params, "acknowledged"),
        severity=_choice(params, "severity", SEVERITIES),
        kind=_choice(params, "kind", KINDS),
        factory_id=optional_id(params, "factory_id"),
        gateway=gateway,
        sensor_id=optional_id(params, "sensor_id"),
        factories=factories,
        machine_id=optional_id(params, "machine_id"),
        shelved=_flag(params, "shelved"),
    )


def list_alerts(
    storage: Storage, params: Mapping[str, str], factories: frozenset[int] | None = None
) -> tuple[list[dict[str, Any]], PageRequest, int]:
    """(one page of alerts, the page asked for, how many match): for hub.api.pagination.paged.
    ``factories``: a scoped caller's, whose list holds only their alerts."""
    where = parse_filter(params, factories)
    page = parse_page(params)
    at = now()
    rows, total = storage.list_alerts(where, page.offset, page.limit, at)
    return [alert_view(r, at) for r in rows], page, total


def _alert_id(raw: str | None) -> int:
    return parse_id("id", raw)


def get_alert(storage: Storage, raw_id: str | None) -> Result:
    alert_id = _alert_id(raw_id)
    row = storage.get_alert(alert_id)
    if row is None:
        raise not_found("alert", alert_id)
    view = alert_view(row)
    entries, total = storage.journal_tail(alert_id, JOURNAL_IN_ALERT)
    view["journal"] = [journal_view(e) for e in entries]
    view["journal_total"] = total
    return view, {}


def alert_journal(
    storage: Storage, raw_id: str | None, params: Mapping[str, str]
) -> tuple[list[dict[str, Any]], PageRequest, int]:
    """(one page of an alert's journal, oldest first; the page; how many): for paged()."""
    alert_id = _alert_id(raw_id)
    page = parse_page(params)
    entries, total = storage.journal_page(alert_id, page.offset, page.limit)
    if total == 0 and storage.get_alert(alert_id) is None:
        raise not_found("alert", alert_id)
    return [journal_view(e) for e in entries], page, total


# -- transitions ------------------------------------------------------------------------


class AckBody(msgspec.Struct, forbid_unknown_fields=True):
    comment: str | None = None


class ShelveBody(msgspec.Struct, forbid_unknown_fields=True):
    duration_s: float
    comment: str | None = None


_AT = re.compile(r"`\$\.(\w+)")
_MISSING = re.compile(r"missing required field `(\w+)`")


def field_of(exc: msgspec.ValidationError) -> str:
    """The body field msgspec's error names ("... - at `$.x`", "missing required field `x`")."""
    text = str(exc)
    found = _AT.search(text) or _MISSING.search(text)
    return found.group(1) if found else "body"


def bad_json(body: bytes) -> ApiError | None:
    """400 when ``body`` is no JSON at all (msgspec's typed decode may report a type error
    first: ``[`` is "expected object", not "truncated")."""
    try:
        # The standard parser: it reads 1e999 (as inf), which is a field's 422, not a 400.
        json.loads(body)
    except ValueError as exc:
        return ApiError(400, "invalid_json", f"body is not valid JSON: {exc}")
    return None


def _decode(body: bytes, kind: type[msgspec.Struct], *, empty_ok: bool) -> Any:
    if not body.strip():
        if empty_ok:
            return kind()
        raise ApiError(
            422,
            "validation_error",
            "a JSON object body is required",
            [{"field": "body", "message": "required"}],
        )
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        malformed = bad_json(body)
        if malformed is not None:
            raise malformed from None
        text = str(exc)
        raise ApiError(
            422,
            "validation_error",
            f"invalid body: {text}",
            [{"field": field_of(exc), "message": text}],
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def _comment(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_COMMENT:
        raise ApiError(
            422,
            "validation_error",
            f"comment must be at most {MAX_COMMENT} characters",
            [{"field": "comment", "message": f"at most {MAX_COMMENT} characters"}],
        )
    # The text rule of every field: PostgreSQL cannot store NUL, and both engines must agree.
    problem = None if value is None else text_problem("comment", value)
    if problem is not None:
        raise ApiError(422, "validation_error", problem, [{"field": "comment", "message": problem}])
    return value or None


def _actor(principal: Principal | None) -> Actor:
    assert principal is not None
    return actor_of(principal)


def _done(row: dict[str, Any] | None, alert_id: int) -> Result:
    if row is None:
        raise not_found("alert", alert_id)
    view: dict[str, Any] = alert_view(row)
    return view, {}


def _conflict(exc: Conflict) -> ApiError:
    return ApiError(409, "conflict", str(exc))


def acknowledge(
    storage: Storage, principal: Principal | None, raw_id: str | None, body: bytes
) -> Result:
    alert_id = _alert_id(raw_id)
    parsed = _decode(body, AckBody, empty_ok=True)
    comment = _comment(parsed.comment)
    try:
        row = storage.acknowledge_alert(alert_id, _actor(principal), comment)
    except Conflict as exc:
        raise _conflict(exc) from None
    return _done(row, alert_id)


def shelve(
    storage: Storage, principal: Principal | None, raw_id: str | None, body: bytes
) -> Result:
    alert_id = _alert_id(raw_id)
    parsed = _decode(body, ShelveBody, empty_ok=False)
    duration = parsed.duration_s
    if not math.isfinite(duration) or not 0 < duration <= MAX_SHELVE_S:
        message = f"must be a number of seconds above 0 and at most {MAX_SHELVE_S:g}"
        raise ApiError(
            422,
            "validation_error",
            f"invalid 'duration_s': {message}",
            [{"field": "duration_s", "message": message}],
        )
    comment = _comment(parsed.comment)
    try:
        row = storage.shelve_alert(alert_id, _actor(principal), now() + duration, comment)
    except Conflict as exc:
        raise _conflict(exc) from None
    return _done(row, alert_id)


def unshelve(
    storage: Storage, principal: Principal | None, raw_id: str | None, body: bytes
) -> Result:
    alert_id = _alert_id(raw_id)
    parsed = _decode(body, AckBody, empty_ok=True)
    comment = _comment(parsed.comment)
    try:
        row = storage.unshelve_alert(alert_id, _actor(principal), comment)
    except Conflict as exc:
        raise _conflict(exc) from None
    return _done(row, alert_id)

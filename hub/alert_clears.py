"""Clears the hub applies although the alert they clear fails a check of the batch.

A clear is the edge saying "I no longer hold this alarm". Refusing it leaves the alarm active
at the hub for good (the agent gives a refused alert up), so a clear of an alert the hub
holds active is applied even when a field that only matters for *opening* an alert fails
its check: ``opened_at`` and ``reading_seq`` were taken when the alert opened and are not
changed by a clear. A clear whose own ``closed_at`` the hub cannot take (outside its time
window, past 9999) is applied at the time the hub received it.

An alert the hub does not hold active (never seen, or cleared already) gets its problems
in the 422 as before: there is nothing to reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from shared.wire import Batch, WireAlert

# Fields of an alert whose problems do not stop its clear.
OPENING_FIELDS = frozenset({"alerts.opened_at", "alerts.reading_seq"})
CLEAR_FIELDS = frozenset({"alerts.closed_at"})
# hub.batchcheck stops collecting at this many problems: past it, an alert may have problems
# that were never looked at, so nothing is taken for a clear.
_TRUNCATED_AT = 100

Problems = list[dict[str, Any]]


def split(batch: Batch, problems: Problems) -> tuple[Problems, dict[int, Problems]]:
    """(problems that stand whatever the hub holds, the problems of each clear the hub
    applies if it holds the alert active, by alert id)."""
    if not problems or len(problems) >= _TRUNCATED_AT:
        return problems, {}
    by_id: dict[int, Problems] = {}
    for p in problems:
        by_id.setdefault(p["alert_id"], []).append(p)
    clears = {a.id for a in batch.alerts if a.closed_at is not None}
    maybe = {
        alert_id: found
        for alert_id, found in by_id.items()
        if alert_id in clears and all(p["field"] in OPENING_FIELDS | CLEAR_FIELDS for p in found)
    }
    standing = [p for p in problems if p["alert_id"] not in maybe]
    return standing, maybe


def apply(
    batch: Batch, held: Mapping[int, float], maybe: Mapping[int, Problems], received: float
) -> Batch:
    """``batch`` with each clear of an alert in ``held`` (edge alert id -> the opened_at the
    hub has) carrying only what the hub can store: the opening fields it has already, and
    the time received when its own closed_at failed."""
    alerts: list[WireAlert] = []
    for a in batch.alerts:
        if a.id not in maybe or a.id not in held:
            alerts.append(a)
            continue
        closed_at = a.closed_at
        if any(p["field"] in CLEAR_FIELDS for p in maybe[a.id]):
            closed_at = received
        alerts.append(
            msgspec.structs.replace(a, opened_at=held[a.id], closed_at=closed_at, reading_seq=None)
        )
    return msgspec.structs.replace(batch, alerts=alerts)

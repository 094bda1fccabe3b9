"""The alert object as the API answers it and webhooks carry it, from a storage row.

One shape for both: an operator's console and a webhook receiver see the same fields
(docs/api.md, "The fleet's alerts"), so neither side has its own copy of the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.timeutil import now, to_rfc3339


def _time(ts: float | None) -> str | None:
    return None if ts is None else to_rfc3339(ts)


def by_view(
    token_id: int | None,
    role: str | None,
    kind: str | None = None,
    name: str | None = None,
    display: str | None = None,
) -> dict[str, Any] | None:
    """Who acted: ``{"kind", "name", "display", "role", "token_id"}``, as journal entries,
    audit rows and webhook events name them. An act recorded before kinds and names were kept
    has no kind: it was a token's, or the hub's own or a gateway's by its role."""
    if role is None:
        return None
    if kind is None:
        kind = role if role in ("system", "gateway") else "token"
    return {"kind": kind, "name": name, "display": display, "role": role, "token_id": token_id}


def alert_view(row: Mapping[str, Any], at: float | None = None) -> dict[str, Any]:
    """The API's alert object (docs/api.md, "The fleet's alerts") from a storage row."""
    at = now() if at is None else at
    shelved_until = row["shelved_until"]
    shelved = shelved_until is not None and shelved_until > at
    state, acked = row["state"], bool(row["acknowledged"])
    return {
        "id": row["id"],
        "kind": row["kind"],
        "sensor_id": row["sensor_id"],
        "gateway_id": row["gateway_id"],
        "factory_id": row["factory_id"],
        "rule_id": row["rule_id"],
        "severity": row["severity"],
        "state": state,
        "acknowledged": acked,
        # ThingsBoard's four: ACTIVE_UNACK, ACTIVE_ACK, CLEARED_UNACK, CLEARED_ACK.
        "status": f"{state}_{'ack' if acked else 'unack'}",
        "acknowledged_at": _time(row["acknowledged_at"]),
        # .get: webhook events queued by a hub before these columns carry none.
        "acknowledged_by": by_view(
            row["acknowledged_by"],
            row["acknowledged_role"],
            row.get("acknowledged_kind"),
            row.get("acknowledged_name"),
            row.get("acknowledged_display"),
        ),
        "shelved": shelved,
        "shelved_until": _time(shelved_until) if shelved else None,
        # .get: webhook events queued by a hub before these marks carry none.
        "chattering": bool(row.get("chattering", False)),
        "stale": bool(row.get("stale", False)),
        # ISA-18.2 "out of service": the sensor (or its machine) is removed from service, so
        # the alert is suppressed; who did it, when and why (null while in service).
        "out_of_service": row.get("out_of_service_at") is not None,
        "out_of_service_since": _time(row.get("out_of_service_at")),
        "out_of_service_by": by_view(
            row.get("out_of_service_token"),
            row.get("out_of_service_role"),
            row.get("out_of_service_kind"),
            row.get("out_of_service_name"),
            row.get("out_of_service_display"),
        ),
        "out_of_service_comment": row.get("out_of_service_comment"),
        "out_of_service_machine_status": row.get("out_of_service_machine_status"),
        "opened_at": _time(row["opened_at"]),
        "cleared_at": _time(row["cleared_at"]),
        "breach_type": row["breach_type"],
        "value": row["value"],
        # The most extreme value while active (hub.storage.alarm_peaks); .get: as above.
        "peak_value": row.get("peak_value"),
        "threshold_value": row["threshold_value"],
        "updated_at": _time(row["updated_at"]),
    }


def journal_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": _time(entry["at"]),
        "by": by_view(
            entry["token_id"],
            entry["role"],
            entry["by_kind"],
            entry["by_name"],
            entry["by_display"],
        ),
        "action": entry["action"],
        "severity": entry["severity"],
        "comment": entry["comment"],
    }

"""Out of service (ISA-18.2): ``POST /sensors/:id/out-of-service {comment}`` and
``POST /sensors/:id/in-service {comment}`` for operators and admins. A machine's status
(MAINTENANCE, OFFLINE) does the same for all its sensors through its PATCH (hub.api.crud).

Both answer the sensor's out-of-service state: its own record (who, when, why) and its
machine's, and ``out_of_service`` when either holds it. Storage does the change, its
journal entries and its audit row in one transaction (hub.storage.service).
"""

from __future__ import annotations

from typing import Any

from hub.alert_view import by_view
from hub.api import spec as _spec  # noqa: F401  (describes these routes)
from hub.api.alarms import AckBody, _comment, _conflict, _decode
from hub.api.http import API, Ctx, Route, Services
from hub.api.queries import parse_id
from hub.api.scope import by_id
from hub.auth import ALERT_ROLES
from hub.errors import not_found
from hub.ingest import body_bytes
from hub.storage import Conflict
from shared.timeutil import to_rfc3339


def _record(period: dict[str, Any] | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {
        "since": to_rfc3339(float(period["started_at"])),
        "by": by_view(
            period["token_id"],
            period["role"],
            period["by_kind"],
            period["by_name"],
            period["by_display"],
        ),
        "comment": period["comment"],
    }


def service_view(state: dict[str, Any]) -> dict[str, Any]:
    """A sensor's out-of-service state as the API answers it."""
    machine = _record(state["machine"])
    if machine is not None:
        machine["status"] = state["machine"]["machine_status"]
    return {
        "sensor_id": state["sensor_id"],
        "out_of_service": state["sensor"] is not None or state["machine"] is not None,
        "sensor": _record(state["sensor"]),
        "machine": machine,
    }


def routes(hub: Services) -> list[Route]:
    service = hub.storage.service

    def change(ctx: Ctx, out: bool) -> Any:
        sensor_id = parse_id("id", ctx.path("id"))
        parsed = _decode(body_bytes(ctx.request.body), AckBody, empty_ok=True)
        comment = _comment(parsed.comment)
        assert ctx.principal is not None
        act = service.take_out if out else service.put_back
        try:
            state = act(sensor_id, ctx.principal, comment)
        except Conflict as exc:
            raise _conflict(exc) from None
        if state is None:
            raise not_found("sensor", sensor_id)
        return service_view(state), {}

    def h_out_of_service(ctx: Ctx) -> Any:
        """Take a sensor out of service {comment} (operator or admin): no new alerts, no
        webhooks for it until it is back; 409 if it is out of service already."""
        return change(ctx, True)

    def h_in_service(ctx: Ctx) -> Any:
        """Put a sensor back in service {comment} (operator or admin); its alerts still
        active are announced again; 409 if it was not put out of service."""
        return change(ctx, False)

    sensor = by_id("sensor")
    return [
        Route(
            "POST", f"{API}/sensors/:id/out-of-service", ALERT_ROLES, h_out_of_service, scope=sensor
        ),
        Route("POST", f"{API}/sensors/:id/in-service", ALERT_ROLES, h_in_service, scope=sensor),
    ]

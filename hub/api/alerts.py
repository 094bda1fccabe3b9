"""The fleet's alerts: ``GET /alerts`` (filters, pagination), ``GET /alerts/:id`` (with its
newest transitions), ``GET /alerts/:id/journal`` (all of them, paged), and the operators'
``POST /alerts/:id/ack | shelve | unshelve`` (hub.api.alarms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub.api import alarms
from hub.api import spec as _spec  # noqa: F401  (describes these routes)
from hub.api.pagination import paged
from hub.auth import ALERT_ROLES, READ_ROLES, Role
from hub.ingest import body_bytes

if TYPE_CHECKING:
    from hub.app import Ctx, Hub

Route = tuple[str, str, "tuple[Role, ...] | None", Callable[["Ctx"], Any]]


def routes(hub: Hub, api: str) -> list[Route]:
    storage = hub.storage

    def h_list_alerts(ctx: Ctx) -> Any:
        """Every alert of the fleet, newest first (filters: state, acknowledged, severity,
        kind, factory_id, gateway_id, sensor_id; page, per_page)."""
        return paged(ctx, *alarms.list_alerts(storage, ctx.params))

    def h_get_alert(ctx: Ctx) -> Any:
        """One alert with its newest 100 transitions (at, by, action, comment) and
        journal_total."""
        return alarms.get_alert(storage, ctx.path("id"))

    def h_alert_journal(ctx: Ctx) -> Any:
        """One alert's journal, oldest first (page, per_page)."""
        return paged(ctx, *alarms.alert_journal(storage, ctx.path("id"), ctx.params))

    def h_ack_alert(ctx: Ctx) -> Any:
        """Acknowledge an alert {comment} (operator or admin); 409 if acknowledged already."""
        body = body_bytes(ctx.request.body)
        return alarms.acknowledge(storage, ctx.principal, ctx.path("id"), body)

    def h_shelve_alert(ctx: Ctx) -> Any:
        """Shelve an active alert {duration_s, comment} for at most 7 days; it unshelves itself."""
        body = body_bytes(ctx.request.body)
        return alarms.shelve(storage, ctx.principal, ctx.path("id"), body)

    def h_unshelve_alert(ctx: Ctx) -> Any:
        """Unshelve an alert {comment}; 409 if it is not shelved."""
        body = body_bytes(ctx.request.body)
        return alarms.unshelve(storage, ctx.principal, ctx.path("id"), body)

    return [
        ("GET", f"{api}/alerts", READ_ROLES, h_list_alerts),
        ("GET", f"{api}/alerts/:id", READ_ROLES, h_get_alert),
        ("GET", f"{api}/alerts/:id/journal", READ_ROLES, h_alert_journal),
        ("POST", f"{api}/alerts/:id/ack", ALERT_ROLES, h_ack_alert),
        ("POST", f"{api}/alerts/:id/shelve", ALERT_ROLES, h_shelve_alert),
        ("POST", f"{api}/alerts/:id/unshelve", ALERT_ROLES, h_unshelve_alert),
    ]

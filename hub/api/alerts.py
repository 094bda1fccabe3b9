"""The fleet's alerts: ``GET /alerts`` (filters, pagination), ``GET /alerts/:id`` (with its
newest transitions), ``GET /alerts/:id/journal`` (all of them, paged), and the operators'
``POST /alerts/:id/ack | shelve | unshelve`` (hub.api.alarms); and a sensor's
``GET /sensors/:id/alerts``, a fresh check of its last readings (hub.api.thresholds)."""

from __future__ import annotations

from typing import Any

from hub.api import alarms, readcost, thresholds
from hub.api import spec as _spec  # noqa: F401  (describes these routes)
from hub.api.http import API, Ctx, Route, Services, charged
from hub.api.pagination import paged
from hub.api.scope import LISTED, by_id
from hub.auth import ALERT_ROLES, READ_ROLES
from hub.ingest import body_bytes


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_list_alerts(ctx: Ctx) -> Any:
        """Every alert of the fleet, newest first (filters: state, acknowledged, severity,
        kind, factory_id, gateway_id, sensor_id, machine_id, shelved; page, per_page)."""
        return paged(ctx, *alarms.list_alerts(storage, ctx.params, ctx.scope))

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

    def h_sensor_alerts(ctx: Ctx) -> Any:
        """A fresh threshold check of the last N readings (?limit=100)."""
        return thresholds.sensor_alerts(storage, ctx.path("id"), ctx.params)

    page = charged(readcost.page)
    alert = by_id("alert")
    return [
        Route("GET", f"{API}/alerts", READ_ROLES, h_list_alerts, page, LISTED),
        Route("GET", f"{API}/alerts/:id", READ_ROLES, h_get_alert, scope=alert),
        Route("GET", f"{API}/alerts/:id/journal", READ_ROLES, h_alert_journal, page, alert),
        Route(
            "GET",
            f"{API}/sensors/:id/alerts",
            READ_ROLES,
            h_sensor_alerts,
            charged(readcost.sensor_alerts),
            by_id("sensor"),
        ),
        Route("POST", f"{API}/alerts/:id/ack", ALERT_ROLES, h_ack_alert, scope=alert),
        Route("POST", f"{API}/alerts/:id/shelve", ALERT_ROLES, h_shelve_alert, scope=alert),
        Route("POST", f"{API}/alerts/:id/unshelve", ALERT_ROLES, h_unshelve_alert, scope=alert),
    ]

"""Reading the model: the gateways, factories, machines and sensors, one each or as paged
lists (hub.api.pagination), a gateway's config, and a sensor's thresholds (the one write
here that is not the CRUD of hub.api.crud: it flows down to the gateways).

Each list takes ``page`` and ``per_page`` beside its filters and answers one page with
``meta: {page, per_page, total, total_pages}`` and ``links: {self, next, last}``; storage
counts and slices in one read transaction, so the total and the page agree.
"""

from __future__ import annotations

from typing import Any

from hub.api import queries, readcost, thresholds
from hub.api.crud import factory_view, machine_view
from hub.api.http import API, Ctx, Raw, Result, Route, Services, charged
from hub.api.pagination import paged, parse_page
from hub.api.queries import gateway_view, optional_id, sensor_view
from hub.api.scope import LISTED, by_id
from hub.auth import READ_ROLES, Role
from hub.errors import bad_param
from hub.storage import Storage
from shared.sensor_key import key_problem
from shared.text import nfc
from shared.timeutil import now


def gateways(storage: Storage, ctx: Ctx) -> Raw:
    page = parse_page(ctx.params)
    rows, total = storage.gateways_page(page.offset, page.limit, ctx.scope)
    at = now()
    return paged(ctx, [gateway_view(row, at) for row in rows], page, total)


def factories(storage: Storage, ctx: Ctx) -> Raw:
    page = parse_page(ctx.params)
    rows, total = storage.factories_page(page.offset, page.limit, ctx.scope)
    return paged(ctx, [factory_view(row) for row in rows], page, total)


def machines(storage: Storage, ctx: Ctx) -> Raw:
    factory_id = optional_id(ctx.params, "factory_id")
    page = parse_page(ctx.params)
    rows, total = storage.machines_page(factory_id, page.offset, page.limit, ctx.scope)
    return paged(ctx, [machine_view(row) for row in rows], page, total)


def sensors(storage: Storage, ctx: Ctx) -> Raw:
    params = ctx.params
    machine_id = optional_id(params, "machine_id")
    factory_id = optional_id(params, "factory_id")
    # Keys are stored in NFC: "café" typed with a combining accent finds the same sensor.
    key = nfc(params["key"]) if params.get("key") else None
    if key is not None and key_problem(key) is not None:
        raise bad_param("key", f"must be line/machine/sensor, got {key!r}")
    page = parse_page(params)
    rows, total = storage.sensors_page(
        page.offset,
        page.limit,
        machine_id=machine_id,
        key=key,
        factory_id=factory_id,
        factories=ctx.scope,
    )
    stale = storage.stale_sensors(row["id"] for row in rows)
    data: list[Any] = [sensor_view(row, row["id"] in stale) for row in rows]
    return paged(ctx, data, page, total)


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_gateways(ctx: Ctx) -> Raw:
        """Every registered gateway with its last report and online status (paged)."""
        return gateways(storage, ctx)

    def h_gateway(ctx: Ctx) -> Result:
        """One gateway by its name (e.g. gw-01)."""
        return queries.get_gateway(storage, ctx.path("id") or "")

    def h_gateway_config(ctx: Ctx) -> Result:
        """Threshold rules for the sensors of a gateway's factory, with their version."""
        assert ctx.principal is not None
        return thresholds.gateway_config(storage, ctx.principal, ctx.path("id") or "")

    def h_factories(ctx: Ctx) -> Raw:
        """Every factory (paged)."""
        return factories(storage, ctx)

    def h_machines(ctx: Ctx) -> Raw:
        """Machines, optionally of one factory (?factory_id=), paged."""
        return machines(storage, ctx)

    def h_sensors(ctx: Ctx) -> Raw:
        """Sensors, filtered by ?machine_id=, ?factory_id= or ?key=line/machine/sensor, paged."""
        return sensors(storage, ctx)

    def h_sensor(ctx: Ctx) -> Result:
        """One sensor by numeric id."""
        return queries.get_sensor(storage, ctx.path("id"))

    def h_thresholds(ctx: Ctx) -> Result:
        """Set a sensor's thresholds {"min", "max", "deadband"}; they flow down to gateways."""
        assert ctx.principal is not None
        return thresholds.put_thresholds(storage, ctx.path("id"), ctx.body, ctx.principal)

    page = charged(readcost.page)
    config_roles: tuple[Role, ...] = ("gateway", *READ_ROLES)
    gateway, sensor = by_id("gateway"), by_id("sensor")
    return [
        Route("GET", f"{API}/gateways", READ_ROLES, h_gateways, page, LISTED),
        Route("GET", f"{API}/gateways/:id", READ_ROLES, h_gateway, scope=by_id("gateway")),
        Route("GET", f"{API}/gateways/:id/config", config_roles, h_gateway_config, scope=gateway),
        Route("GET", f"{API}/factories", READ_ROLES, h_factories, page, LISTED),
        Route("GET", f"{API}/machines", READ_ROLES, h_machines, page, LISTED),
        Route("GET", f"{API}/sensors", READ_ROLES, h_sensors, page, LISTED),
        Route("GET", f"{API}/sensors/:id", READ_ROLES, h_sensor, scope=sensor),
        Route("PUT", f"{API}/sensors/:id/thresholds", ("admin",), h_thresholds, scope=sensor),
    ]

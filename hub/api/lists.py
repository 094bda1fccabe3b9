"""The model's list endpoints, paged (hub.api.pagination): gateways, factories, machines, sensors.

Each takes ``page`` and ``per_page`` beside its filters and answers one page with
``meta: {page, per_page, total, total_pages}`` and ``links: {self, next, last}``; storage
counts and slices in one read transaction, so the total and the page agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.api.crud import factory_view, machine_view
from hub.api.pagination import paged, parse_page
from hub.api.queries import gateway_view, optional_id, sensor_view
from hub.errors import bad_param
from hub.storage import Storage
from shared.sensor_key import key_problem
from shared.text import nfc
from shared.timeutil import now

if TYPE_CHECKING:
    from hub.app import Ctx, Raw


def gateways(storage: Storage, ctx: Ctx) -> Raw:
    page = parse_page(ctx.params)
    rows, total = storage.gateways_page(page.offset, page.limit)
    at = now()
    return paged(ctx, [gateway_view(row, at) for row in rows], page, total)


def factories(storage: Storage, ctx: Ctx) -> Raw:
    page = parse_page(ctx.params)
    rows, total = storage.factories_page(page.offset, page.limit)
    return paged(ctx, [factory_view(row) for row in rows], page, total)


def machines(storage: Storage, ctx: Ctx) -> Raw:
    factory_id = optional_id(ctx.params, "factory_id")
    page = parse_page(ctx.params)
    rows, total = storage.machines_page(factory_id, page.offset, page.limit)
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
        page.offset, page.limit, machine_id=machine_id, key=key, factory_id=factory_id
    )
    stale = storage.stale_sensors(row["id"] for row in rows)
    data: list[Any] = [sensor_view(row, row["id"] in stale) for row in rows]
    return paged(ctx, data, page, total)

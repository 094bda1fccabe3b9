"""The seeds' CRUD of the model, for admins: factories, machines, sensors.

``POST`` answers 201 with the new object, ``PATCH`` 200 with the changed one, ``DELETE``
204. 409 for a name already taken, a factory that still has machines or gateways, a
machine that still has sensors (or whose line/name would change under its sensors' keys);
422 naming every bad field (a parent id that does not exist included); 404 for an id in
the path that does not exist. Each change is in the change log with the token that made it.

A sensor may be created before its first reading: its key is its machine's line and name
and its own name, and data a gateway sends for that key later lands on it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from hub.api import crud_spec as _spec  # noqa: F401  (describes these routes)
from hub.api import key_owner
from hub.api.bodies import Checker, decode, invalid, nfc_names, set_fields
from hub.api.http import API, Ctx, Route, Services, created, no_content
from hub.api.queries import parse_id, sensor_view
from hub.api.scope import UNSCOPED, by_id, in_body
from hub.auth import READ_ROLES, Role
from hub.errors import ApiError, not_found
from hub.storage import Conflict, Storage
from hub.storage.crud import Unknown
from shared.text import nfc
from shared.timeutil import to_rfc3339

Status = Literal["OPERATIONAL", "MAINTENANCE", "OFFLINE"]
MAX_LOCATION = 256
MAX_TYPE = 64
MAX_UNIT = 32
_UNSET: Any = msgspec.UNSET


class FactoryBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    location: str | None = None


class FactoryPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = _UNSET
    location: str | msgspec.UnsetType | None = _UNSET


class MachineBody(msgspec.Struct, forbid_unknown_fields=True):
    factory_id: int
    line: str
    name: str
    type: str | None = None
    status: Status = "OPERATIONAL"


class MachinePatch(msgspec.Struct, forbid_unknown_fields=True):
    line: str | msgspec.UnsetType = _UNSET
    name: str | msgspec.UnsetType = _UNSET
    type: str | msgspec.UnsetType | None = _UNSET
    status: Status | msgspec.UnsetType = _UNSET


class SensorBody(msgspec.Struct, forbid_unknown_fields=True):
    machine_id: int
    name: str
    unit: str | None = None
    min_threshold: float | None = None
    max_threshold: float | None = None


class SensorPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = _UNSET
    unit: str | msgspec.UnsetType | None = _UNSET


def _time(ts: float | None) -> str | None:
    return None if ts is None else to_rfc3339(ts)


def factory_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": _time(row["created_at"])}


def machine_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": _time(row["created_at"])}


def _nonempty(fields: dict[str, Any], what: str) -> dict[str, Any]:
    if not fields:
        raise invalid([{"field": "body", "message": "name at least one field to change"}], what)
    return fields


def _conflict(exc: Conflict, field: str) -> ApiError:
    return ApiError(409, "conflict", str(exc), [{"field": field, "message": str(exc)}])


def _unknown(exc: Unknown, what: str) -> ApiError:
    return invalid([{"field": exc.field, "message": str(exc)}], what)


# -- factories ---------------------------------------------------------------------------


def parse_factory(body: bytes) -> dict[str, Any]:
    b = decode(body, FactoryBody, "factory")
    name = nfc(b.name)
    check = Checker("factory")
    check.name("name", name)
    check.text("location", b.location, MAX_LOCATION)
    check.done()
    return {"name": name, "location": b.location}


def parse_factory_patch(body: bytes) -> dict[str, Any]:
    fields = nfc_names(_nonempty(set_fields(decode(body, FactoryPatch, "factory")), "factory"))
    check = Checker("factory")
    check.name("name", fields.get("name"))
    check.text("location", fields.get("location"), MAX_LOCATION)
    check.done()
    return fields


# -- machines ----------------------------------------------------------------------------


def parse_machine(body: bytes) -> dict[str, Any]:
    b = decode(body, MachineBody, "machine")
    line, name = nfc(b.line), nfc(b.name)
    check = Checker("machine")
    check.ident("factory_id", b.factory_id)
    check.name("line", line)
    check.name("name", name)
    check.text("type", b.type, MAX_TYPE)
    check.done()
    return {
        "factory_id": b.factory_id,
        "line": line,
        "name": name,
        "type": b.type,
        "status": b.status,
    }


def parse_machine_patch(body: bytes) -> dict[str, Any]:
    fields = nfc_names(_nonempty(set_fields(decode(body, MachinePatch, "machine")), "machine"))
    check = Checker("machine")
    check.name("line", fields.get("line"))
    check.name("name", fields.get("name"))
    check.text("type", fields.get("type"), MAX_TYPE)
    check.done()
    return fields


# -- sensors -----------------------------------------------------------------------------


def parse_sensor(body: bytes) -> dict[str, Any]:
    b = decode(body, SensorBody, "sensor")
    name = nfc(b.name)
    check = Checker("sensor")
    check.ident("machine_id", b.machine_id)
    check.name("name", name)
    check.text("unit", b.unit, MAX_UNIT)
    check.number("min_threshold", b.min_threshold)
    check.number("max_threshold", b.max_threshold)
    check.done()
    low, high = b.min_threshold, b.max_threshold
    if low is not None and high is not None and low > high:
        raise invalid(
            [{"field": "min_threshold", "message": "must not exceed max_threshold"}], "sensor"
        )
    return {
        "machine_id": b.machine_id,
        "name": name,
        "unit": b.unit,
        "min_threshold": b.min_threshold,
        "max_threshold": b.max_threshold,
    }


def parse_sensor_patch(body: bytes) -> dict[str, Any]:
    fields = nfc_names(_nonempty(set_fields(decode(body, SensorPatch, "sensor")), "sensor"))
    check = Checker("sensor")
    check.name("name", fields.get("name"))
    check.text("unit", fields.get("unit"), MAX_UNIT)
    check.done()
    return fields


def routes(hub: Services) -> list[Route]:
    storage: Storage = hub.storage

    def who(ctx: Ctx) -> Any:
        assert ctx.principal is not None  # every route here authenticates
        return ctx.principal

    # -- factories

    def h_factory(ctx: Ctx) -> Any:
        """One factory by id, with how many machines and gateways it has."""
        factory_id = parse_id("id", ctx.path("id"))
        row = storage.get_factory(factory_id)
        if row is None:
            raise not_found("factory", factory_id)
        return factory_view(row), {}

    def h_create_factory(ctx: Ctx) -> Any:
        """Create a factory {name, location} (201); 409 when the name is taken."""
        fields = parse_factory(ctx.body)
        try:
            row = storage.create_factory(fields["name"], fields["location"], who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "name") from None
        return created(ctx, factory_view(row))

    def h_update_factory(ctx: Ctx) -> Any:
        """Rename a factory or change its location."""
        factory_id = parse_id("id", ctx.path("id"))
        fields = parse_factory_patch(ctx.body)
        try:
            row = storage.update_factory(factory_id, fields, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "name") from None
        if row is None:
            raise not_found("factory", factory_id)
        return factory_view(row), {}

    def h_delete_factory(ctx: Ctx) -> Any:
        """Delete a factory without machines or gateways (204); 409 while it has any."""
        factory_id = parse_id("id", ctx.path("id"))
        try:
            done = storage.delete_factory(factory_id, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "id") from None
        if not done:
            raise not_found("factory", factory_id)
        return no_content()

    # -- machines

    def h_machine(ctx: Ctx) -> Any:
        """One machine by id, with how many sensors it has."""
        machine_id = parse_id("id", ctx.path("id"))
        row = storage.get_machine(machine_id)
        if row is None:
            raise not_found("machine", machine_id)
        return machine_view(row), {}

    def h_create_machine(ctx: Ctx) -> Any:
        """Create a machine {factory_id, line, name, type, status} (201); meta.warnings says
        when another factory has one on that line with that name."""
        fields = parse_machine(ctx.body)
        warnings = key_owner.check_machine(storage, fields, ctx.scope)
        try:
            row = storage.create_machine(fields, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "name") from None
        except Unknown as exc:
            raise _unknown(exc, "machine") from None
        return created(ctx, machine_view(row), {"warnings": warnings} if warnings else None)

    def h_update_machine(ctx: Ctx) -> Any:
        """Change a machine's line, name, type or status (line and name: no sensors yet)."""
        machine_id = parse_id("id", ctx.path("id"))
        fields = parse_machine_patch(ctx.body)
        try:
            row = storage.update_machine(machine_id, fields, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "name") from None
        if row is None:
            raise not_found("machine", machine_id)
        return machine_view(row), {}

    def h_delete_machine(ctx: Ctx) -> Any:
        """Delete a machine without sensors (204); 409 while it has any."""
        machine_id = parse_id("id", ctx.path("id"))
        try:
            done = storage.delete_machine(machine_id, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "id") from None
        if not done:
            raise not_found("machine", machine_id)
        return no_content()

    # -- sensors

    def h_create_sensor(ctx: Ctx) -> Any:
        """Create a sensor before its first reading {machine_id, name, unit, min_threshold,
        max_threshold} (201); data for its key (line/machine/name) from the gateways of its
        factory (meta.fed_by) lands on it; meta.warnings says when another factory has a
        sensor with that key."""
        fields = parse_sensor(ctx.body)
        warnings = key_owner.check_sensor(storage, fields, ctx.scope)
        try:
            row = storage.create_sensor(fields, who(ctx))
        except Conflict as exc:
            raise _conflict(exc, "name") from None
        except Unknown as exc:
            raise _unknown(exc, "sensor") from None
        gateways, none = key_owner.fed_by(storage, int(row["factory_id"]))
        meta: dict[str, Any] = {"fed_by": gateways, "warnings": warnings + none}
        return created(ctx, sensor_view(row), meta)

    def h_update_sensor(ctx: Ctx) -> Any:
        """Change a sensor's name or unit (its key stays: gateways keep sending to it)."""
        sensor_id = parse_id("id", ctx.path("id"))
        fields = parse_sensor_patch(ctx.body)
        row = storage.update_sensor(sensor_id, fields, who(ctx))
        if row is None:
            raise not_found("sensor", sensor_id)
        return sensor_view(row), {}

    def h_delete_sensor(ctx: Ctx) -> Any:
        """Delete a sensor with its readings, rollups, anomalies, rules and alerts (204)."""
        sensor_id = parse_id("id", ctx.path("id"))
        if storage.delete_sensor(sensor_id, who(ctx)) is None:
            raise not_found("sensor", sensor_id)
        return no_content()

    admin: tuple[Role, ...] = ("admin",)
    factory, machine, sensor = by_id("factory"), by_id("machine"), by_id("sensor")
    new_machine = in_body("factory", "factory_id", "machine")
    new_sensor = in_body("machine", "machine_id", "sensor")
    return [
        Route("GET", f"{API}/factories/:id", READ_ROLES, h_factory, scope=factory),
        Route("POST", f"{API}/factories", admin, h_create_factory, scope=UNSCOPED),
        Route("PATCH", f"{API}/factories/:id", admin, h_update_factory, scope=factory),
        Route("DELETE", f"{API}/factories/:id", admin, h_delete_factory, scope=factory),
        Route("GET", f"{API}/machines/:id", READ_ROLES, h_machine, scope=machine),
        Route("POST", f"{API}/machines", admin, h_create_machine, scope=new_machine),
        Route("PATCH", f"{API}/machines/:id", admin, h_update_machine, scope=machine),
        Route("DELETE", f"{API}/machines/:id", admin, h_delete_machine, scope=machine),
        Route("POST", f"{API}/sensors", admin, h_create_sensor, scope=new_sensor),
        Route("PATCH", f"{API}/sensors/:id", admin, h_update_sensor, scope=sensor),
        Route("DELETE", f"{API}/sensors/:id", admin, h_delete_sensor, scope=sensor),
    ]

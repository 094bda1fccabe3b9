"""Factory scopes: what a principal limited to some factories may reach, decided in one place.

A principal's ``factories`` (hub.auth.Principal) is None for one that sees every factory,
else the ids of those it may see. Every authenticated route declares a :class:`Scope`
(``Route.scope``); ``hub.app`` refuses to build a route table where one declares none, and
runs :func:`admit` for each request of a scoped principal before its handler:

* ``by_id(kind)``: the route's ``:id`` names a factory, machine, sensor, gateway, alert or
  rule. Its factory is looked up (one query); outside the scope the answer is the same 404
  as for an id that does not exist, so a scoped caller learns nothing of other factories.
* ``in_body(kind, field, what)``: a write whose body names parents by id (a machine's
  factory_id, a sensor's machine_id, the sensor_id of each back-filled reading). One outside
  the scope gets the 422 that a parent that does not exist gets, and nothing is written.
* ``LISTED``: a list or a report; the handler passes ``ctx.scope`` to storage, which keeps
  only rows of those factories in SQL (totals and pages included).
* ``UNSCOPED``: only a principal that sees every factory (creating a factory): 403.
* ``FREE``: the route serves nothing of a factory's to people (ingest, by gateways).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from hub.api.bodies import invalid
from hub.api.queries import MAX_INT, parse_id
from hub.auth import Principal
from hub.errors import ApiError, forbidden, not_found
from hub.storage import Storage
from hub.storage.owners import Kind

# As many ids as hub.api.readings names in its 422 for sensors that do not exist.
_MAX_DETAILS = 50


@dataclass(frozen=True, slots=True)
class Scope:
    """How a route meets a scoped principal (see the module's docstring)."""

    path: Kind | None = None
    body: Kind | None = None
    field: str = ""
    what: str = ""
    listed: bool = False
    unscoped: bool = False
    free: bool = False


LISTED = Scope(listed=True)
UNSCOPED = Scope(unscoped=True)
FREE = Scope(free=True)


def by_id(kind: Kind) -> Scope:
    return Scope(path=kind)


def in_body(kind: Kind, field: str, what: str) -> Scope:
    """``field`` of the body (an object, or each object of an array) names a ``kind``;
    ``what`` is the body's name in the 422 (as its handler words it)."""
    return Scope(body=kind, field=field, what=what)


def admit(
    scope: Scope, principal: Principal, ident: str | None, body: bytes, storage: Storage
) -> None:
    """Raise the answer a scoped ``principal`` gets when the request reaches outside its
    factories; return when it may go on. ``ident``: the path's ``:id``."""
    factories = principal.factories
    if factories is None or scope.free or scope.listed:
        return
    if scope.unscoped:
        raise forbidden("a token or user limited to some factories may not do this")
    if scope.path is not None and ident is not None:
        _admit_path(scope.path, ident, factories, storage)
    if scope.body is not None:
        _admit_body(scope, body, factories, storage)


def _admit_path(kind: Kind, ident: str, factories: frozenset[int], storage: Storage) -> None:
    key: int | str
    shown: object
    if kind == "gateway":
        key, shown = ident, repr(ident)  # as the gateway handlers name a missing one
    else:
        # Parsed as every handler parses its :id (" 5" is 5), so no spelling of an id gets
        # past this check to a handler that reads it; what is no id is the handlers' 400.
        key = shown = parse_id("id", ident)
    owner = storage.owners.factories_of(kind, [key]).get(key)
    if owner not in factories:
        raise not_found(kind, shown)


def _admit_body(scope: Scope, body: bytes, factories: frozenset[int], storage: Storage) -> None:
    assert scope.body is not None
    try:
        decoded: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return  # the handler's 400: nothing is written
    items = decoded if isinstance(decoded, list) else [decoded]
    first: dict[int, int] = {}
    for index, item in enumerate(items):
        value = item.get(scope.field) if isinstance(item, dict) else None
        # Ids past PostgreSQL's bigint exist nowhere (and are the handler's to refuse).
        if type(value) is int and 0 < value <= MAX_INT:
            first.setdefault(value, index)
    if not first:
        return
    owners = storage.owners.factories_of(scope.body, list(first))
    outside = [i for i in first if owners.get(i) not in factories]
    if not outside:
        return
    raise _unknown(scope, outside, first, indexed=isinstance(decoded, list))


def _unknown(scope: Scope, outside: list[int], first: dict[int, int], *, indexed: bool) -> ApiError:
    # Worded as the handler words a parent that does not exist (hub.api.crud, readings).
    details: list[dict[str, Any]] = []
    for ident in sorted(outside)[:_MAX_DETAILS]:
        detail: dict[str, Any] = {
            "field": scope.field,
            "message": f"no {scope.body} with id {ident}",
        }
        details.append({"index": first[ident], **detail} if indexed else detail)
    return invalid(details, scope.what)

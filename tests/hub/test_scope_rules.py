"""The scope check itself, on both engines: every route of the app declares how a scoped
principal meets it (the app refuses to build otherwise), a person limited to some factories is
held to them by the same check as a token, and scoped tokens are stored and looked up."""

from __future__ import annotations

import pytest

from hub.api.http import Ctx, Route
from hub.api.scope import LISTED, admit, by_id, in_body
from hub.app import Hub, scope_of
from hub.auth import Principal, authenticate, hash_token
from hub.config import HubSettings
from hub.errors import ApiError
from hub.storage import Storage, UnknownFactory
from hub.storage.audit import Actor
from hub.storage.model import Conflict

ADMIN = Actor(1, "admin")


def test_every_authenticated_route_declares_a_scope(storage: Storage) -> None:
    hub = Hub(HubSettings(), storage)
    routes = hub.routes() + hub.static_routes()
    undeclared = [f"{r.method} {r.path}" for r in routes if r.roles is not None and r.scope is None]
    assert undeclared == []
    # Every route with an :id says what the id names, or filters as a list does.
    for r in routes:
        if r.roles is not None and ":id" in r.path:
            assert r.scope is not None and r.scope.path is not None, r.path


def test_a_route_without_a_scope_is_refused_when_the_app_is_built() -> None:
    def handler(ctx: Ctx) -> tuple[object, dict[str, object]]:
        return None, {}

    forgot = Route("GET", "/api/v1/new-thing/:id", ("read",), handler)
    with pytest.raises(AssertionError, match="declares no factory scope"):
        scope_of(*forgot[:3], forgot.scope)
    public = Route("GET", "/health/new", None, handler)
    assert scope_of(*public[:3], public.scope).free


def _plant(storage: Storage) -> dict[str, int]:
    ids: dict[str, int] = {}
    for side, factory in (("n", "north"), ("s", "south")):
        storage.add_gateway(f"gw-{side}", factory, f"hash-{side}")
        gateway = storage.get_gateway(f"gw-{side}")
        assert gateway is not None
        ids[f"{side}_factory"] = gateway["factory_id"]
        machine = storage.create_machine(
            {
                "factory_id": gateway["factory_id"],
                "line": "l",
                "name": side,
                "type": None,
                "status": "OFFLINE",
            },
            ADMIN,
        )
        ids[f"{side}_machine"] = machine["id"]
        ids[f"{side}_sensor"] = storage.create_sensor(
            {"machine_id": machine["id"], "name": "t", "unit": "C"}, ADMIN
        )["id"]
    return ids


def test_a_scoped_person_is_held_to_its_factories(storage: Storage) -> None:
    ids = _plant(storage)
    anna = Principal(
        token_id=0, role="admin", user_id=7, name="anna", factories=frozenset({ids["n_factory"]})
    )
    admit(by_id("sensor"), anna, str(ids["n_sensor"]), b"", storage)  # its own: no answer
    with pytest.raises(ApiError) as refused:
        admit(by_id("sensor"), anna, str(ids["s_sensor"]), b"", storage)
    assert (refused.value.status, refused.value.message) == (
        404,
        f"sensor {ids['s_sensor']} not found",
    )
    with pytest.raises(ApiError) as gateway:
        admit(by_id("gateway"), anna, "gw-s", b"", storage)
    assert (gateway.value.status, gateway.value.message) == (404, "gateway 'gw-s' not found")
    body = b'{"machine_id": %d, "name": "x"}' % ids["s_machine"]
    with pytest.raises(ApiError) as forged:
        admit(in_body("machine", "machine_id", "sensor"), anna, None, body, storage)
    assert forged.value.status == 422
    assert forged.value.details == [
        {"field": "machine_id", "message": f"no machine with id {ids['s_machine']}"}
    ]
    admit(LISTED, anna, None, b"", storage)  # lists filter in the handler
    # A list read with the person's scope holds only its factory, in the page and the total.
    rows, total = storage.sensors_page(0, 100, factories=anna.factories)
    assert ([r["id"] for r in rows], total) == ([ids["n_sensor"]], 1)
    rows, total = storage.factories_page(0, 100, factories=frozenset())
    assert (rows, total) == ([], 0)
    # Unscoped: everything, and no check at all.
    everyone = Principal(token_id=1, role="admin")
    admit(by_id("sensor"), everyone, str(ids["s_sensor"]), b"", storage)


def test_scoped_tokens_are_stored_and_looked_up(storage: Storage) -> None:
    ids = _plant(storage)
    scoped = storage.add_token("read", hash_token("fer_scoped"), ["north", "south", "north"])
    plain = storage.add_token("read", hash_token("fer_plain"))
    who = authenticate(storage, "Bearer fer_scoped")
    assert (who.token_id, who.factories) == (
        scoped,
        frozenset(ids[f] for f in ("n_factory", "s_factory")),
    )
    assert authenticate(storage, "Bearer fer_plain").factories is None
    listed = {row["id"]: row["factories"] for row in storage.list_tokens()}
    assert listed[scoped] == ["north", "south"] and listed[plain] == []
    before = len(storage.list_tokens())
    with pytest.raises(UnknownFactory):
        storage.add_token("read", hash_token("fer_nowhere"), ["north", "nowhere"])
    assert len(storage.list_tokens()) == before  # nothing stored
    # A factory in an active token's scope stays (the token would see all); once the token is
    # revoked, the factory may go.
    empty = storage.create_factory("west", "", ADMIN)
    west = storage.add_token("read", hash_token("fer_west"), ["west"])
    with pytest.raises(Conflict, match="token"):
        storage.delete_factory(empty["id"], ADMIN)
    assert storage.revoke_token(west)
    assert storage.delete_factory(empty["id"], ADMIN)

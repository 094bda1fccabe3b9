"""People's accounts through the API (``/api/v1/users``), on a real hub on both engines: every
field made, read and changed; every bad input a clear 4xx with nothing stored; never a
secret in an answer; and each change in the audit log naming who made it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from hub.auth import hash_token
from hub.storage import open_storage
from tests.hub.conftest import HubProcess, start_hub, token
from tests.hub.test_api import assert_error

API = "/api/v1"
SETUP = re.compile(r"^http://127\.0\.0\.1:\d+/setup\?token=([A-Za-z0-9_-]{43})$")
SECRETS = ("password_hash", "setup_hash", "failures", "password", "setup_expires_at")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    server = start_hub(tmp_path_factory.mktemp("people"), database=hub_database)
    try:
        config = server.config
        server.tokens = {
            "admin": token(config, "token", "add", "--role", "admin", "--name", "people desk"),
            "read": token(config, "token", "add", "--role", "read"),
            "operator": token(config, "token", "add", "--role", "operator"),
        }
        with server.client("admin") as c:
            for name in ("north", "south"):
                c.post(f"{API}/factories", json={"name": name}).raise_for_status()
        server.tokens["north admin"] = token(
            config, "token", "add", "--role", "admin", "--factory", "north"
        )
        yield server
    finally:
        code = server.stop()
    assert code == 0


def call(hub: HubProcess, method: str, path: str, who: str = "admin", **kw: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.request(method, f"{API}{path}", **kw)


def data(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()["data"]


def no_secrets(user: dict[str, Any]) -> None:
    assert not set(SECRETS) & set(user), user


def audit(hub: HubProcess, name: str) -> list[dict[str, Any]]:
    """The audit rows of user ``name``, oldest first."""
    rows = data(call(hub, "GET", "/audit", params={"target": "user", "target_id": name}))
    return list(reversed(rows))


def test_create_with_a_setup_link_read_and_list(hub: HubProcess) -> None:
    body = {"name": "Anna", "role": "operator", "display": "Anna Berg", "factories": ["north"]}
    made = data(call(hub, "POST", "/users", json=body), 201)
    no_secrets(made)
    link = SETUP.match(made.pop("setup_link"))
    assert link is not None and made.pop("setup_link_expires_at")
    assert made["name"] == "Anna" and made["display"] == "Anna Berg"
    assert (made["role"], made["factories"]) == ("operator", ["north"])
    assert (made["disabled"], made["locked"], made["has_password"]) == (False, False, False)
    # the link's token is kept as its hash only, and it is the account's
    with contextlib.closing(open_storage(_database(hub))) as storage:
        assert storage.users.setup_user(hash_token(link.group(1))) == "Anna"
    # found in any case; the link is shown once, never again
    for spelling in ("anna", "ANNA", "Anna"):
        assert data(call(hub, "GET", f"/users/{spelling}")) == made
    listed = call(hub, "GET", "/users")
    assert listed.json()["meta"]["total"] >= 1 and listed.json()["links"]["self"]
    assert made in listed.json()["data"]
    for user in listed.json()["data"]:
        no_secrets(user)
        assert "setup_link" not in user


def _database(hub: HubProcess) -> str:
    for line in hub.config.read_text().splitlines():
        if line.startswith("database = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no database in the hub's config")


def test_create_with_a_password(hub: HubProcess) -> None:
    body = {"name": "bo", "role": "read", "password": "a long enough passphrase"}
    made = data(call(hub, "POST", "/users", json=body), 201)
    no_secrets(made)
    assert "setup_link" not in made and made["has_password"] is True
    assert made["password_changed_at"] and (made["display"], made["factories"]) == ("", [])
    weak = call(hub, "POST", "/users", json={"name": "cy", "role": "read", "password": "password1"})
    assert assert_error(weak, 422, "validation_error")["details"][0]["field"] == "password"
    assert_error(call(hub, "GET", "/users/cy"), 404, "not_found")


def test_unicode_names_are_one_account_in_any_case_and_form(hub: HubProcess) -> None:
    made = data(call(hub, "POST", "/users", json={"name": "Zo\u00eb", "role": "read"}), 201)
    assert made["name"] == "Zo\u00eb"
    # the same name typed with a combining diaeresis, in capitals
    decomposed = "ZOE\u0308"
    assert data(call(hub, "GET", f"/users/{quote(decomposed)}"))["name"] == "Zo\u00eb"
    again = call(hub, "POST", "/users", json={"name": decomposed.lower(), "role": "admin"})
    assert assert_error(again, 409, "conflict")["details"][0]["field"] == "name"
    same_case = call(hub, "POST", "/users", json={"name": "zo\u00eb", "role": "admin"})
    assert_error(same_case, 409, "conflict")
    assert data(call(hub, "GET", "/users/zo%C3%AB"))["role"] == "read"  # unchanged


BAD_CREATES = [
    ({"name": "x" * 10_000, "role": "read"}, "name"),
    ({"name": "", "role": "read"}, "name"),
    ({"name": "two words", "role": "read"}, "name"),
    ({"name": "nul\u0000", "role": "read"}, "name"),
    ({"name": "rtl\u202e", "role": "read"}, "name"),
    ({"name": "ok", "role": "root"}, "role"),
    ({"name": "ok", "role": "gateway"}, "role"),
    ({"name": "ok"}, "role"),
    ({"role": "read"}, "name"),
    ({"name": "ok", "role": "read", "factories": ["nowhere"]}, "factories"),
    ({"name": "ok", "role": "read", "factories": [" north"]}, "factories"),
    ({"name": "ok", "role": "read", "factories": "north"}, "factories"),
    ({"name": "ok", "role": "read", "display": "d" * 129}, "display"),
    ({"name": "ok", "role": "read", "display": " padded"}, "display"),
    ({"name": "ok", "role": "read", "disabled": True}, "disabled"),
    ({"name": "ok", "role": "read", "password_hash": "x"}, "password_hash"),
    ({"name": 7, "role": "read"}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES)
def test_bad_creates_are_422_naming_the_field(
    hub: HubProcess, body: dict[str, Any], field: str
) -> None:
    error = assert_error(call(hub, "POST", "/users", json=body), 422, "validation_error")
    assert error["details"][0]["field"] == field
    assert len(error["message"]) < 1000  # a 10 kB name is not echoed back
    assert_error(call(hub, "GET", "/users/ok"), 404, "not_found")


def test_malformed_bodies_are_400_or_422(hub: HubProcess) -> None:
    assert_error(call(hub, "POST", "/users", content=b"{not json"), 400, "invalid_json")
    assert_error(call(hub, "POST", "/users", content=b""), 422, "validation_error")
    assert_error(call(hub, "PATCH", "/users/anna", content=b"{not json"), 400, "invalid_json")


def test_patch_every_field(hub: HubProcess) -> None:
    data(call(hub, "POST", "/users", json={"name": "dee", "role": "read"}), 201)
    changes: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"role": "admin"}, {"role": "admin"}),
        ({"factories": ["south", "north", "south"]}, {"factories": ["north", "south"]}),
        ({"display": "Dee Dee"}, {"display": "Dee Dee"}),
        ({"disabled": True}, {"disabled": True}),
        ({"disabled": False, "factories": []}, {"disabled": False, "factories": []}),
        ({"display": ""}, {"display": ""}),
    ]
    for body, want in changes:
        user = data(call(hub, "PATCH", "/users/DEE", json=body))
        no_secrets(user)
        assert {k: user[k] for k in want} == want, body
        assert data(call(hub, "GET", "/users/dee")) == user


BAD_PATCHES = [
    ({}, "body"),
    ({"role": "root"}, "role"),
    ({"role": None}, "role"),
    ({"factories": ["nowhere"]}, "factories"),
    ({"factories": [""]}, "factories"),
    ({"display": "x" * 10_000}, "display"),
    ({"display": "tab\there"}, "display"),
    ({"disabled": "yes"}, "disabled"),
    ({"name": "renamed"}, "name"),
    ({"password": "a long enough passphrase"}, "password"),
]


@pytest.fixture(scope="module")
def eve(hub: HubProcess) -> dict[str, Any]:
    body = {"name": "eve", "role": "read", "factories": ["south"], "display": "Eve"}
    return data(call(hub, "POST", "/users", json=body), 201)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("body", "field"), BAD_PATCHES)
def test_bad_patches_are_422_and_change_nothing(
    hub: HubProcess, eve: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    before = data(call(hub, "GET", "/users/eve"))
    assert before["factories"] == ["south"]
    error = assert_error(call(hub, "PATCH", "/users/eve", json=body), 422, "validation_error")
    assert error["details"][0]["field"] == field
    assert data(call(hub, "GET", "/users/eve")) == before


@pytest.mark.parametrize("name", ["nobody", "x" * 10_000, "two%20words"])
def test_an_unknown_user_is_404(hub: HubProcess, name: str) -> None:
    assert_error(call(hub, "GET", f"/users/{name}"), 404, "not_found")
    assert_error(call(hub, "PATCH", f"/users/{name}", json={"role": "read"}), 404, "not_found")


@pytest.mark.parametrize("who", ["read", "operator", "north admin"])
def test_admins_of_every_factory_only(hub: HubProcess, who: str) -> None:
    """An admin limited to some factories could give an account any factory: 403 too."""
    for method, path, body in (
        ("GET", "/users", None),
        ("POST", "/users", {"name": "sneaky", "role": "admin"}),
        ("GET", "/users/anna", None),
        ("PATCH", "/users/anna", {"role": "admin"}),
    ):
        assert_error(call(hub, method, path, who, json=body), 403, "forbidden")
        with httpx.Client(base_url=hub.url) as anonymous:
            assert_error(anonymous.request(method, f"{API}{path}", json=body), 401)
    assert_error(call(hub, "GET", "/users/sneaky"), 404)


def test_every_change_is_audited_with_who_made_it(hub: HubProcess) -> None:
    data(call(hub, "POST", "/users", json={"name": "Fay", "role": "read"}), 201)
    call(hub, "PATCH", "/users/fay", json={"role": "operator", "factories": ["north"]})
    call(hub, "PATCH", "/users/fay", json={"role": "operator"})  # no change: no row
    call(hub, "PATCH", "/users/fay", json={"disabled": True, "display": "Fay F"})
    call(hub, "PATCH", "/users/fay", json={"disabled": False})
    rows = audit(hub, "Fay")
    assert [r["action"] for r in rows] == [
        "user.create",
        "user.update",
        "user.update",
        "user.disable",
        "user.enable",
    ]
    assert rows[0]["detail"] == {
        "role": "read",
        "display": "",
        "factories": [],
        "password": "setup link",
    }
    assert rows[1]["detail"] == {
        "role": {"from": "read", "to": "operator"},
        "factories": {"from": [], "to": ["north"]},
    }
    assert rows[2]["detail"] == {"display": {"from": "", "to": "Fay F"}}
    for row in rows:
        by = row["by"]
        assert (by["kind"], by["name"], by["role"], by["display"]) == (
            "token",
            "people desk",
            "admin",
            None,
        )
        assert isinstance(by["token_id"], int)
    # nothing refused is in the log
    call(hub, "PATCH", "/users/fay", json={"factories": ["nowhere"]})
    assert len(audit(hub, "Fay")) == len(rows)


def test_every_bad_field_is_named_at_once(hub: HubProcess) -> None:
    body = {"name": "two words", "role": "root", "display": " x", "factories": [""]}
    error = assert_error(call(hub, "POST", "/users", json=body), 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["name", "role", "display", "factories"]
    patch = {"role": "root", "display": " x"}
    error = assert_error(call(hub, "PATCH", "/users/anna", json=patch), 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["role", "display"]

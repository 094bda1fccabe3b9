"""Every list endpoint pages (page, per_page; meta and links) against a real hub, both engines."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get

API = "/api/v1"


def page(hub: HubProcess, path: str, **params: Any) -> dict[str, Any]:
    r = get(hub, f"{API}{path}", **params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def walk(hub: HubProcess, path: str, per_page: int, **params: Any) -> list[Any]:
    """Every row, following links.next from the first page."""
    body = page(hub, path, per_page=per_page, **params)
    rows = list(body["data"])
    while body["links"]["next"] is not None:
        with hub.client("read") as c:
            r = c.get(body["links"]["next"])
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["data"]
    return rows


@pytest.fixture(scope="module")
def model(hub: HubProcess) -> dict[str, int]:
    with hub.client("admin") as c:
        ids = [
            c.post(f"{API}/factories", json={"name": f"pg-{i:02d}"}).json()["data"]["id"]
            for i in range(7)
        ]
        machines = [
            c.post(
                f"{API}/machines", json={"factory_id": ids[0], "line": "l", "name": f"m{i}"}
            ).json()["data"]["id"]
            for i in range(5)
        ]
        for i in range(3):
            r = c.post(f"{API}/sensors", json={"machine_id": machines[0], "name": f"s{i}"})
            assert r.status_code == 201, r.text
    return {"factory": ids[0], "machine": machines[0]}


def test_meta_and_links(hub: HubProcess, model: dict[str, int]) -> None:
    everything = page(hub, "/factories", per_page=1000)
    total = everything["meta"]["total"]
    assert total == len(everything["data"]) >= 7
    body = page(hub, "/factories", page=2, per_page=3)
    meta = body["meta"]
    assert (meta["page"], meta["per_page"], meta["total"]) == (2, 3, total)
    assert meta["total_pages"] == -(-total // 3)
    assert [f["id"] for f in body["data"]] == [f["id"] for f in everything["data"][3:6]]
    assert body["links"]["self"] == "/api/v1/factories?page=2&per_page=3"
    assert body["links"]["next"] == "/api/v1/factories?page=3&per_page=3"
    assert body["links"]["last"] == f"/api/v1/factories?page={meta['total_pages']}&per_page=3"
    assert meta["request_id"]


def test_following_next_visits_every_row_once(hub: HubProcess, model: dict[str, int]) -> None:
    walked = walk(hub, "/factories", 2)
    assert [f["id"] for f in walked] == [f["id"] for f in page(hub, "/factories")["data"]]
    machines = walk(hub, "/machines", 2, factory_id=model["factory"])
    assert len(machines) == 5
    assert {m["factory_id"] for m in machines} == {model["factory"]}
    sensors = walk(hub, "/sensors", 2, machine_id=model["machine"])
    assert [s["name"] for s in sensors] == ["s0", "s1", "s2"]


def test_filters_stay_in_the_links(hub: HubProcess, model: dict[str, int]) -> None:
    body = page(hub, "/machines", factory_id=model["factory"], per_page=2)
    assert body["meta"]["total"] == 5
    assert body["links"]["next"] == (
        f"/api/v1/machines?factory_id={model['factory']}&page=2&per_page=2"
    )


def test_defaults_past_the_end_and_gateways(hub: HubProcess, model: dict[str, int]) -> None:
    default = page(hub, "/sensors")
    assert (default["meta"]["page"], default["meta"]["per_page"]) == (1, 100)
    past = page(hub, "/factories", page=999, per_page=10)
    assert past["data"] == []
    assert past["links"]["next"] is None
    gateways = page(hub, "/gateways", per_page=1)
    assert gateways["meta"]["total"] == 3
    assert len(gateways["data"]) == 1
    assert gateways["data"][0]["id"] == "gw-01"


@pytest.mark.parametrize(
    ("path", "params", "bad"),
    [
        ("/factories", {"page": "0"}, "page"),
        ("/machines", {"per_page": "1001"}, "per_page"),
        ("/sensors", {"per_page": "-5"}, "per_page"),
        ("/gateways", {"page": "two"}, "page"),
    ],
)
def test_bad_page_values_are_400(
    hub: HubProcess, path: str, params: dict[str, str], bad: str
) -> None:
    error = assert_error(get(hub, f"{API}{path}", **params), 400, "invalid_parameter")
    assert error["details"][0]["param"] == bad


def test_head_answers_like_get(hub: HubProcess) -> None:
    r = httpx.head(
        f"{hub.url}{API}/factories", headers={"Authorization": f"Bearer {hub.tokens['read']}"}
    )
    assert r.status_code == 200

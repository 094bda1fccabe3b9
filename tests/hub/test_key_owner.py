"""One sensor key in two factories is never made silently, and a gateway's config says which
sensor (of which factory) each of its keys lands on; on both engines."""

from __future__ import annotations

from typing import Any

import httpx

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess

API = "/api/v1"
KEY = "lineA/oven1/temp"


def ingest(hub: HubProcess, key: str) -> None:
    batch = Batch(gateway_id="gw-01", readings=[WireReading(1, key, 1_700_000_000.0, 180.0)])
    with hub.client("gw1") as c:
        r = c.post(
            f"{API}/ingest", content=encode_batch(batch), headers={"Content-Encoding": "gzip"}
        )
    assert r.status_code == 200, r.text


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_key_of_another_factory_is_created_with_a_warning_naming_it(hub: HubProcess) -> None:
    ingest(hub, KEY)  # gw-01 (factory acme) makes the sensor on first data
    with hub.client("read") as c:
        (acme_sensor,) = c.get(f"{API}/sensors", params={"key": KEY}).json()["data"]
    with hub.client("admin") as a:
        plant2 = created(a.post(f"{API}/factories", json={"name": "plant-2"}))["data"]
        machine = {"factory_id": plant2["id"], "line": "lineA", "name": "oven1"}
        m = created(a.post(f"{API}/machines", json=machine))
        (warning,) = m["meta"]["warnings"]
        assert warning["code"] == "key_in_other_factory" and "'acme'" in warning["message"]
        assert warning["others"][0]["factory"] == "acme"
        sensor = {"machine_id": m["data"]["id"], "name": "temp", "max_threshold": 250.0}
        s = created(a.post(f"{API}/sensors", json=sensor))
        assert s["meta"]["warnings"][0]["others"] == [
            {"id": acme_sensor["id"], "factory_id": acme_sensor["factory_id"], "factory": "acme"}
        ]
    # Said plainly: plant-2 has no gateway, so no reading reaches this sensor yet.
    assert s["data"]["factory"] == "plant-2"
    assert s["meta"]["fed_by"] == []
    assert [w["code"] for w in s["meta"]["warnings"]] == ["key_in_other_factory", "no_gateway"]
    with hub.client("read") as c:
        both = c.get(f"{API}/sensors", params={"key": KEY}).json()["data"]
        assert {x["factory"] for x in both} == {"acme", "plant-2"}
        mine = c.get(f"{API}/sensors", params={"key": KEY, "factory_id": plant2["id"]})
        assert [x["id"] for x in mine.json()["data"]] == [s["data"]["id"]]
    # The gateway's config names the sensor its key lands on: acme's, not plant-2's.
    with hub.client("gw1") as g:
        config = g.get(f"{API}/gateways/gw-01/config").json()["data"]
    assert config["factory"] == "acme"
    mapped = {m["key"]: m for m in config["mapped_sensors"]}
    assert mapped[KEY] == {
        "key": KEY,
        "sensor_id": acme_sensor["id"],
        "factory_id": acme_sensor["factory_id"],
    }
    assert all(m["factory_id"] == config["factory_id"] for m in config["mapped_sensors"])


def test_a_new_key_names_the_gateways_it_is_fed_by(hub: HubProcess) -> None:
    with hub.client("read") as c:
        acme = next(f for f in c.get(f"{API}/factories").json()["data"] if f["name"] == "acme")
    with hub.client("admin") as a:
        machine = {"factory_id": acme["id"], "line": "fresh", "name": "press"}
        m = created(a.post(f"{API}/machines", json=machine))
        assert "warnings" not in m["meta"]
        s = created(a.post(f"{API}/sensors", json={"machine_id": m["data"]["id"], "name": "p"}))
    assert sorted(s["meta"]["fed_by"]) == ["gw-01", "gw-02"]
    assert s["meta"]["warnings"] == []

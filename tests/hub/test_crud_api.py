"""The seeds' CRUD of factories, machines and sensors against a real hub, on both engines."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get

API = "/api/v1"
T0 = 1_700_000_000.0


def send(hub: HubProcess, method: str, path: str, who: str = "admin", **kw: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.request(method, f"{API}{path}", **kw)


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def fields_of(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error["details"]}


def test_factory_machine_sensor_lifecycle(hub: HubProcess) -> None:
    factory = created(send(hub, "POST", "/factories", json={"name": "Plant 7", "location": "Lyon"}))
    assert (factory["name"], factory["location"], factory["machines"]) == ("Plant 7", "Lyon", 0)
    fid = factory["id"]
    assert get(hub, f"{API}/factories/{fid}").json()["data"]["location"] == "Lyon"

    machine = created(
        send(
            hub,
            "POST",
            "/machines",
            json={"factory_id": fid, "line": "L7", "name": "press", "type": "PRESS"},
        )
    )
    assert (machine["status"], machine["type"], machine["factory_id"]) == (
        "OPERATIONAL",
        "PRESS",
        fid,
    )
    mid = machine["id"]
    patched = send(hub, "PATCH", f"/machines/{mid}", json={"status": "MAINTENANCE"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["status"] == "MAINTENANCE"

    sensor = created(
        send(
            hub,
            "POST",
            "/sensors",
            json={"machine_id": mid, "name": "oil", "unit": "bar", "max_threshold": 9.5},
        )
    )
    assert sensor["key"] == "L7/press/oil"
    assert sensor["thresholds"]["max"] == 9.5
    sid = sensor["id"]

    # Non-empty parents refuse deletion.
    assert_error(send(hub, "DELETE", f"/factories/{fid}"), 409, "conflict")
    assert_error(send(hub, "DELETE", f"/machines/{mid}"), 409, "conflict")
    # The machine's line/name are its sensors' keys: no rename under them.
    assert_error(send(hub, "PATCH", f"/machines/{mid}", json={"name": "press2"}), 409)

    renamed = send(hub, "PATCH", f"/sensors/{sid}", json={"name": "Oil pressure", "unit": "kPa"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["data"]["name"], renamed.json()["data"]["unit"]) == (
        "Oil pressure",
        "kPa",
    )
    assert renamed.json()["data"]["key"] == "L7/press/oil"

    assert send(hub, "DELETE", f"/sensors/{sid}").status_code == 204
    assert_error(get(hub, f"{API}/sensors/{sid}"), 404)
    assert send(hub, "DELETE", f"/machines/{mid}").status_code == 204
    assert send(hub, "DELETE", f"/factories/{fid}").status_code == 204
    assert_error(get(hub, f"{API}/factories/{fid}"), 404)
    assert_error(send(hub, "DELETE", f"/factories/{fid}"), 404)


def test_a_sensor_made_before_its_data_receives_it(hub: HubProcess) -> None:
    # gw-01 belongs to factory "acme" (made when the gateway was registered).
    acme = next(
        f for f in get(hub, f"{API}/factories", per_page=1000).json()["data"] if f["name"] == "acme"
    )
    machine = created(
        send(hub, "POST", "/machines", json={"factory_id": acme["id"], "line": "pre", "name": "m"})
    )
    sensor = created(
        send(hub, "POST", "/sensors", json={"machine_id": machine["id"], "name": "flow"})
    )
    body = encode_batch(
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(s, "pre/m/flow", T0 + s, float(s)) for s in range(1, 6)],
        )
    )
    with hub.client("gw1") as c:
        c.post(
            f"{API}/ingest", content=body, headers={"Content-Encoding": "gzip"}
        ).raise_for_status()
    readings = get(hub, f"{API}/sensors/{sensor['id']}/readings").json()["data"]
    assert [r["value"] for r in readings] == [1.0, 2.0, 3.0, 4.0, 5.0]
    same_key = get(hub, f"{API}/sensors", key="pre/m/flow").json()["data"]
    assert [s["id"] for s in same_key] == [sensor["id"]]


def test_deleting_a_sensor_removes_its_readings_rollups_and_alerts(hub: HubProcess) -> None:
    key = "del/m/temp"
    batch = Batch(
        gateway_id="gw-01",
        readings=[WireReading(100 + s, key, T0 + 60 * s, float(s)) for s in range(1, 11)],
    )
    with hub.client("gw1") as c:
        c.post(f"{API}/ingest", content=encode_batch(batch), headers={"Content-Encoding": "gzip"})
    sid = get(hub, f"{API}/sensors", key=key).json()["data"][0]["id"]
    assert get(hub, f"{API}/sensors/{sid}/stats").json()["data"]["count"] == 10
    assert send(hub, "DELETE", f"/sensors/{sid}").status_code == 204
    assert get(hub, f"{API}/sensors", key=key).json()["data"] == []
    # The same readings sent again make a new, empty-history sensor: the old data is gone
    # (a re-sent (gateway, seq) would have been a duplicate if its reading still existed).
    with hub.client("gw1") as c:
        again = c.post(
            f"{API}/ingest", content=encode_batch(batch), headers={"Content-Encoding": "gzip"}
        )
    assert again.json()["data"]["accepted"] == 10
    new = get(hub, f"{API}/sensors", key=key).json()["data"][0]["id"]
    stats = get(hub, f"{API}/sensors/{new}/stats").json()["data"]
    assert (stats["count"], stats["min"], stats["max"]) == (10, 1.0, 10.0)
    series = get(hub, f"{API}/sensors/{new}/series", bucket="1h").json()["data"]
    assert sum(b["count"] for b in series) == 10


def test_duplicates_are_409(hub: HubProcess) -> None:
    created(send(hub, "POST", "/factories", json={"name": "Twin"}))
    taken = assert_error(send(hub, "POST", "/factories", json={"name": "Twin"}), 409, "conflict")
    assert fields_of(taken) == {"name"}
    other = created(send(hub, "POST", "/factories", json={"name": "Twin 2"}))
    assert_error(send(hub, "PATCH", f"/factories/{other['id']}", json={"name": "Twin"}), 409)
    m = {"factory_id": other["id"], "line": "a", "name": "b"}
    machine = created(send(hub, "POST", "/machines", json=m))
    assert_error(send(hub, "POST", "/machines", json=m), 409)
    s = {"machine_id": machine["id"], "name": "x"}
    created(send(hub, "POST", "/sensors", json=s))
    assert_error(send(hub, "POST", "/sensors", json=s), 409)


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/factories", {"name": ""}, {"name"}),
        ("/factories", {"name": "a/b"}, {"name"}),
        ("/factories", {"name": "ok", "location": "x\x00y"}, {"location"}),
        ("/factories", {"name": "ok", "location": "x" * 300}, {"location"}),
        ("/factories", {"location": "nowhere"}, {"name"}),
        ("/factories", {"name": "ok", "extra": 1}, {"extra"}),
        ("/factories", {"name": 5}, {"name"}),
        ("/machines", {"factory_id": 1, "line": "l\r\n", "name": "m"}, {"line"}),
        ("/machines", {"factory_id": 1, "line": "l", "name": "m", "status": "BROKEN"}, {"status"}),
        ("/machines", {"factory_id": 0, "line": "l", "name": "m"}, {"factory_id"}),
        ("/machines", {"factory_id": 999999, "line": "l", "name": "m"}, {"factory_id"}),
        ("/sensors", {"machine_id": 999999, "name": "s"}, {"machine_id"}),
        ("/sensors", {"machine_id": 1, "name": " padded "}, {"name"}),
        (
            "/sensors",
            {"machine_id": 1, "name": "s", "min_threshold": 5, "max_threshold": 1},
            {"min_threshold"},
        ),
        ("/sensors", {"machine_id": 1, "name": "s", "min_threshold": 1e300}, {"min_threshold"}),
        ("/sensors", {"machine_id": 1, "name": "s", "unit": "\u200b"}, {"unit"}),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    hub: HubProcess, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    error = assert_error(send(hub, "POST", path, json=body), 422, "validation_error")
    assert fields_of(error) == fields


def test_bad_json_and_empty_patches(hub: HubProcess) -> None:
    assert_error(send(hub, "POST", "/factories", content=b"{nope"), 400, "invalid_json")
    f = created(send(hub, "POST", "/factories", json={"name": "Patchy"}))
    assert fields_of(assert_error(send(hub, "PATCH", f"/factories/{f['id']}", json={}), 422)) == {
        "body"
    }
    assert_error(send(hub, "PATCH", "/factories/987654", json={"location": "x"}), 404)
    assert_error(send(hub, "PATCH", "/sensors/987654", json={"unit": "x"}), 404)
    assert_error(send(hub, "DELETE", "/machines/0"), 400, "invalid_parameter")


def test_only_admins_write(hub: HubProcess) -> None:
    assert_error(send(hub, "POST", "/factories", who="read", json={"name": "Nope"}), 403)
    with hub.client() as c:
        assert c.post(f"{API}/factories", json={"name": "Nope"}).status_code == 401
    names = {f["name"] for f in get(hub, f"{API}/factories", per_page=1000).json()["data"]}
    assert "Nope" not in names

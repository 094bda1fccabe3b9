"""POST /readings/bulk against a real hub, on both engines: idempotent back-fill that the
rollup-backed reads agree with, all or nothing on bad rows."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get

API = "/api/v1"
T0 = 1_700_000_000.0


def post_bulk(hub: HubProcess, body: Any, who: str = "admin") -> httpx.Response:
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    with hub.client(who) as c:
        return c.post(f"{API}/readings/bulk", content=content)


def new_sensor(hub: HubProcess, name: str) -> int:
    with hub.client("admin") as c:
        f = c.post(f"{API}/factories", json={"name": f"bulk-{name}"}).json()["data"]
        m = c.post(f"{API}/machines", json={"factory_id": f["id"], "line": "b", "name": "m"})
        s = c.post(f"{API}/sensors", json={"machine_id": m.json()["data"]["id"], "name": name})
        assert s.status_code == 201, s.text
        return int(s.json()["data"]["id"])


def test_reposting_the_same_body_stores_nothing_twice(hub: HubProcess) -> None:
    sid = new_sensor(hub, "idem")
    rows = [{"sensor_id": sid, "value": float(i), "timestamp": T0 + 30 * i} for i in range(500)]
    first = post_bulk(hub, rows)
    assert first.status_code == 201, first.text
    data = first.json()["data"]
    assert (data["inserted"], data["duplicates"]) == (500, 0)
    assert data["duration_ms"] >= 0
    again = post_bulk(hub, rows).json()["data"]
    assert (again["inserted"], again["duplicates"]) == (0, 500)
    # Overlapping: only the new tail is stored; RFC 3339 names the same instant as epoch.
    more = [
        {"sensor_id": sid, "value": 499.0, "timestamp": "2023-11-14T22:13:20Z"},  # T0
        *({"sensor_id": sid, "value": float(i), "timestamp": T0 + 30 * i} for i in range(490, 510)),
    ]
    tail = post_bulk(hub, more).json()["data"]
    assert (tail["inserted"], tail["duplicates"]) == (10, 11)

    stats = get(hub, f"{API}/sensors/{sid}/stats").json()["data"]
    assert (stats["count"], stats["min"], stats["max"]) == (510, 0.0, 509.0)
    assert abs(stats["avg"] - sum(range(510)) / 510) < 1e-9
    # The rollup tiers took the back-fill through the same insert path as ingest.
    series = get(hub, f"{API}/sensors/{sid}/series", bucket="1h").json()["data"]
    assert sum(b["count"] for b in series) == 510
    readings = get(hub, f"{API}/sensors/{sid}/readings", limit=5).json()["data"]
    assert [r["value"] for r in readings] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_one_bad_row_stores_nothing(hub: HubProcess) -> None:
    sid = new_sensor(hub, "atomic")
    good = [{"sensor_id": sid, "value": 1.0, "timestamp": T0 + i} for i in range(3)]
    cases: list[tuple[Any, str]] = [
        ([*good, {"sensor_id": 987654321, "value": 1.0, "timestamp": T0}], "sensor_id"),
        ([*good, {"sensor_id": sid, "value": 1.0, "timestamp": 4e12}], "timestamp"),
        ([*good, {"sensor_id": sid, "value": 1.0, "timestamp": "yesterday"}], "timestamp"),
        (
            [*good, {"sensor_id": sid, "value": 1.0, "timestamp": T0 - 20 * 365 * 86400}],
            "timestamp",
        ),
        ([*good, {"sensor_id": 0, "value": 1.0, "timestamp": T0}], "sensor_id"),
    ]
    for body, field in cases:
        error = assert_error(post_bulk(hub, body), 422, "validation_error")
        bad = error["details"][0]
        assert (bad["index"], bad["field"]) == (3, field), error
    inf = msgspec.json.encode(good)[:-1] + b',{"sensor_id":%d,"value":1e999,"timestamp":%r}]' % (
        sid,
        T0,
    )
    error = assert_error(post_bulk(hub, inf), 422)
    assert error["details"][0]["field"] == "value"
    assert get(hub, f"{API}/sensors/{sid}/stats").json()["data"]["count"] == 0


def test_malformed_and_oversized_bodies(hub: HubProcess) -> None:
    assert_error(post_bulk(hub, b"[{"), 400, "invalid_json")
    assert_error(post_bulk(hub, []), 422)
    assert_error(post_bulk(hub, {"sensor_id": 1}), 422)
    missing = assert_error(post_bulk(hub, [{"sensor_id": 1, "value": 2.0}]), 422)
    assert (missing["details"][0]["index"], missing["details"][0]["field"]) == (0, "timestamp")
    extra = [{"sensor_id": 1, "value": 2.0, "timestamp": T0}, {"sensor_id": 1, "v": 1}]
    unknown = assert_error(post_bulk(hub, extra), 422)
    assert (unknown["details"][0]["index"], unknown["details"][0]["field"]) == (1, "v")
    big = [{"sensor_id": 1, "value": 0.0, "timestamp": T0 + i} for i in range(10_001)]
    assert_error(post_bulk(hub, big), 413)


def test_only_admins_back_fill(hub: HubProcess) -> None:
    sid = new_sensor(hub, "who")
    rows = [{"sensor_id": sid, "value": 1.0, "timestamp": T0}]
    assert_error(post_bulk(hub, rows, who="read"), 403)
    assert get(hub, f"{API}/sensors/{sid}/stats").json()["data"]["count"] == 0

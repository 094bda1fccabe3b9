"""Values that break sums, look-alike names, text that breaks storage (issue 23), on a real
hub on both engines.

A reading beyond ±1e15 (shared.values) is refused with a detail naming it; an agent that
buffered such readings before it checked them sets exactly those aside and the hub stores
the rest, with rollups that stay right. Thresholds have the same bound, every text field
refuses NUL and control characters alike on SQLite and PostgreSQL, and names are compared
in NFC, so ``café`` typed either way is one name.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from agent.buffer import Buffer, Reading
from agent.config import AgentConfig
from agent.sync import Syncer
from shared.values import MAX_ABS_VALUE
from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.hub.conftest import HubProcess, token

# A whole hour two hours ago: within the hub's ts window, and one rollup bucket of each tier.
HOUR = math.floor((time.time() - 7200) / 3600) * 3600
NFC_CAFE = "caf\u00e9"
NFD_CAFE = "cafe\u0301"


@pytest.fixture(scope="module")
def ops(hub: HubProcess) -> HubProcess:
    hub.tokens.setdefault("operator", token(hub.config, "token", "add", "--role", "operator"))
    return hub


def get(hub: HubProcess, path: str, **params: Any) -> Any:
    with hub.client("read") as c:
        r = c.get(f"/api/v1{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def sensor_id(hub: HubProcess, key: str) -> int:
    found = get(hub, "/sensors", key=key)
    assert len(found) == 1, found
    return int(found[0]["id"])


def ingest(hub: HubProcess, *readings: WireReading, alerts: list[WireAlert] | None = None) -> Any:
    body = encode_batch(Batch(gateway_id="gw-01", readings=list(readings), alerts=alerts or []))
    with hub.client("gw1") as c:
        return c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})


def agent_config(hub: HubProcess, tmp_path: Path) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "gateway_id": "gw-01",
            "mqtt": {"host": "127.0.0.1", "port": 1},
            "hub": {
                "url": hub.url,
                "token": hub.tokens["gw1"],
                "backoff_min_s": 0.01,
                "backoff_max_s": 0.05,
            },
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "metrics": {"listen": ""},
        }
    )


# -- item 1: one huge value never holds the others back ------------------------------------


async def test_an_agents_buffered_huge_values_are_set_aside_and_the_rest_stored(
    hub: HubProcess, tmp_path: Path
) -> None:
    # What an agent without the edge check may hold: 1e308 and -1e308 in one minute of one
    # sensor (their sum overflows a rollup bucket), beside the normal readings of others.
    buffer = Buffer(agent_config(hub, tmp_path).buffer.path)
    rows = [Reading("huge/m1/a", HOUR + 1, 1e308, None, HOUR + 1)]
    rows += [Reading("huge/m1/b", HOUR + i, float(i), None, HOUR + i) for i in range(1, 11)]
    rows += [Reading("huge/m1/a", HOUR + 2, -1e308, None, HOUR + 2)]
    rows += [Reading("huge/m1/a", HOUR + 3, 5.0, None, HOUR + 3)]
    rows += [Reading("huge/m1/c", HOUR + 70, 20.0, "C", HOUR + 70)]
    buffer.append(rows)
    syncer = Syncer(agent_config(hub, tmp_path), buffer)
    async with syncer._client() as http:
        for _ in range(4):  # one 422 naming the two, then the rest: bounded either way
            if buffer.backlog == 0:
                break
            await syncer.sync_once(http)
    assert buffer.backlog == 0
    assert buffer.dead_letters_total == 2
    reasons = [r[0] for r in buffer._db.execute("SELECT reason FROM dead_letters")]
    assert len(reasons) == 2
    assert all("value" in r and f"{MAX_ABS_VALUE:g}" in r for r in reasons), reasons

    a, b, c = (sensor_id(hub, f"huge/m1/{s}") for s in "abc")
    span = {"from": HOUR, "to": HOUR + 3600}
    stats_b = get(hub, f"/sensors/{b}/stats", **span)
    assert (stats_b["count"], stats_b["min"], stats_b["max"]) == (10, 1.0, 10.0)
    assert stats_b["avg"] == pytest.approx(5.5)
    stats_a = get(hub, f"/sensors/{a}/stats", **span)
    assert (stats_a["count"], stats_a["min"], stats_a["max"], stats_a["avg"]) == (1, 5.0, 5.0, 5.0)
    assert get(hub, f"/sensors/{c}/latest")["value"] == 20.0
    # Answered from the rollup tiers: the buckets hold the stored readings and nothing else.
    hour_a = get(hub, f"/sensors/{a}/series", bucket="1h", **span)
    assert [(r["count"], r["avg"]) for r in hour_a] == [(1, 5.0)]
    hour_b = get(hub, f"/sensors/{b}/series", bucket="1h", **span)
    assert [(r["count"], r["min"], r["max"]) for r in hour_b] == [(10, 1.0, 10.0)]
    # The sensor goes on taking readings.
    assert ingest(hub, WireReading(10_001, "huge/m1/a", HOUR + 4, 7.0)).status_code == 200
    assert get(hub, f"/sensors/{a}/stats", **span)["count"] == 2


@pytest.mark.parametrize("value", [1e308, -1e308, MAX_ABS_VALUE * 1.5])
def test_ingest_names_each_reading_past_the_bound(hub: HubProcess, value: float) -> None:
    r = ingest(
        hub,
        WireReading(20_001, "huge/m2/a", HOUR + 1, 1.0),
        WireReading(20_002, "huge/m2/a", HOUR + 2, value),
    )
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert [(d["seq"], d["field"]) for d in details] == [(20_002, "value")]
    assert "1e+15" in details[0]["message"]
    assert not get(hub, "/sensors", key="huge/m2/a")  # nothing of the batch stored


def test_the_bound_itself_is_a_reading(hub: HubProcess) -> None:
    ok = ingest(
        hub,
        WireReading(30_001, "huge/m3/a", HOUR + 1, MAX_ABS_VALUE),
        WireReading(30_002, "huge/m3/a", HOUR + 2, -MAX_ABS_VALUE),
    )
    assert ok.status_code == 200, ok.text
    stats = get(hub, f"/sensors/{sensor_id(hub, 'huge/m3/a')}/stats")
    assert (stats["min"], stats["max"], stats["count"]) == (-MAX_ABS_VALUE, MAX_ABS_VALUE, 2)


def test_bulk_refuses_a_value_past_the_bound_by_its_index(hub: HubProcess) -> None:
    assert ingest(hub, WireReading(40_001, "huge/m4/a", HOUR + 1, 1.0)).status_code == 200
    sid = sensor_id(hub, "huge/m4/a")
    body = [
        {"sensor_id": sid, "value": 2.0, "timestamp": HOUR + 10},
        {"sensor_id": sid, "value": 1e308, "timestamp": HOUR + 11},
        {"sensor_id": sid, "value": 1e308, "timestamp": HOUR + 12},
    ]
    with hub.client("admin") as client:
        r = client.post("/api/v1/readings/bulk", json=body)
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert [(d["index"], d["field"]) for d in details] == [(1, "value"), (2, "value")]
    assert get(hub, f"/sensors/{sid}/stats")["count"] == 1


# -- item 2: thresholds have the bound of readings ---------------------------------------


@pytest.mark.parametrize("body", [{"min": -1e308}, {"max": 1e308}, {"max": 1e16}])
def test_thresholds_past_the_bound_are_refused(hub: HubProcess, body: dict[str, float]) -> None:
    assert ingest(hub, WireReading(50_001, "huge/m5/a", HOUR + 1, 1.0)).status_code == 200
    sid = sensor_id(hub, "huge/m5/a")
    with hub.client("admin") as c:
        r = c.put(f"/api/v1/sensors/{sid}/thresholds", json=body)
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == list(body)
        ok = c.put(f"/api/v1/sensors/{sid}/thresholds", json={"min": -1e15, "max": 1e15})
        assert ok.status_code == 200, ok.text


# -- item 3: NUL and control characters in text, alike on both engines --------------------


@pytest.mark.parametrize(
    ("n", "comment"), [(1, "a\x00b"), (2, "line\nbreak"), (3, "zero\u200bwidth")]
)
def test_a_comment_with_a_control_character_is_a_422(ops: HubProcess, n: int, comment: str) -> None:
    key = f"text/m1/s{n}"
    alert = WireAlert(
        id=60_000 + n,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=50.0,
        value=60.0,
        opened_at=HOUR,
    )
    assert ingest(ops, WireReading(60_000 + n, key, HOUR, 60.0), alerts=[alert]).status_code == 200
    alert_id = get(ops, "/alerts", sensor_id=sensor_id(ops, key))[0]["id"]
    with ops.client("operator") as c:
        for action, body in (
            ("ack", {"comment": comment}),
            ("shelve", {"duration_s": 60, "comment": comment}),
        ):
            r = c.post(f"/api/v1/alerts/{alert_id}/{action}", json=body)
            assert r.status_code == 422, r.text
            assert [d["field"] for d in r.json()["error"]["details"]] == ["comment"]
        assert c.post(f"/api/v1/alerts/{alert_id}/ack", json={"comment": "ok"}).status_code == 200
    assert get(ops, f"/alerts/{alert_id}")["acknowledged"] is True


# -- item 4: names in NFC -----------------------------------------------------------------


def test_a_factory_name_typed_either_way_is_one_name(hub: HubProcess) -> None:
    with hub.client("admin") as c:
        first = c.post("/api/v1/factories", json={"name": NFC_CAFE})
        assert first.status_code == 201, first.text
        assert first.json()["data"]["name"] == NFC_CAFE
        again = c.post("/api/v1/factories", json={"name": NFD_CAFE})
        assert again.status_code == 409, again.text


def test_a_sensor_made_by_crud_takes_readings_sent_in_the_other_form(hub: HubProcess) -> None:
    acme = next(f for f in get(hub, "/factories") if f["name"] == "acme")
    with hub.client("admin") as c:
        m = c.post(
            "/api/v1/machines", json={"factory_id": acme["id"], "line": NFD_CAFE, "name": "m1"}
        )
        assert m.status_code == 201, m.text
        assert m.json()["data"]["line"] == NFC_CAFE
        twin = c.post(
            "/api/v1/machines", json={"factory_id": acme["id"], "line": NFC_CAFE, "name": "m1"}
        )
        assert twin.status_code == 409, twin.text
        s = c.post("/api/v1/sensors", json={"machine_id": m.json()["data"]["id"], "name": "t"})
        assert s.status_code == 201, s.text
        dup = c.post("/api/v1/sensors", json={"machine_id": m.json()["data"]["id"], "name": "t"})
        assert dup.status_code == 409, dup.text
    sid = s.json()["data"]["id"]
    # A gateway (of any age) that sends the decomposed form lands on the same sensor.
    r = ingest(hub, WireReading(70_001, f"{NFD_CAFE}/m1/t", HOUR + 1, 4.5))
    assert r.status_code == 200, r.text
    assert get(hub, f"/sensors/{sid}/latest")["value"] == 4.5
    assert [x["id"] for x in get(hub, "/sensors", key=f"{NFD_CAFE}/m1/t")] == [sid]
    assert [x["id"] for x in get(hub, "/sensors", key=f"{NFC_CAFE}/m1/t")] == [sid]


def test_readings_sent_in_both_forms_make_one_sensor(hub: HubProcess) -> None:
    r = ingest(
        hub,
        WireReading(80_001, f"l/{NFD_CAFE}/x", HOUR + 1, 1.0),
        WireReading(80_002, f"l/{NFC_CAFE}/x", HOUR + 2, 2.0),
    )
    assert r.status_code == 200, r.text
    found = get(hub, "/sensors", key=f"l/{NFC_CAFE}/x")
    assert len(found) == 1 and found[0]["key"] == f"l/{NFC_CAFE}/x"
    assert get(hub, f"/sensors/{found[0]['id']}/stats")["count"] == 2

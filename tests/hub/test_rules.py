"""Alert rules through a real hub, on both engines: CRUD with validation, and the flow down
to the gateways (config_version in the ingest answer, alert_rules in the gateway config)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, token

T0 = 1_700_000_000.0


def ingest(hub: HubProcess, seq: int, key: str, gateway: str = "gw-01", who: str = "gw1") -> int:
    body = encode_batch(
        Batch(gateway_id=gateway, readings=[WireReading(seq, key, T0 + seq, 1.0, None)])
    )
    with hub.client(who) as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["config_version"])


@pytest.fixture(scope="module")
def sensor(hub: HubProcess) -> int:
    ingest(hub, 1, "ru/m1/temp")
    with hub.client("read") as c:
        return int(c.get("/api/v1/sensors", params={"key": "ru/m1/temp"}).json()["data"][0]["id"])


def post_rule(hub: HubProcess, sensor: int, who: str = "admin", **body: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.post(f"/api/v1/sensors/{sensor}/rules", json=body)


def config(hub: HubProcess, who: str = "gw1") -> dict[str, Any]:
    with hub.client(who) as c:
        r = c.get("/api/v1/gateways/gw-01/config")
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def fields(err: httpx.Response, status: int = 422) -> set[str]:
    assert err.status_code == status, err.text
    return {d["field"] for d in err.json()["error"]["details"]}


def test_rule_crud_flows_to_the_gateway(hub: HubProcess, sensor: int) -> None:
    before = config(hub)["version"]
    r = post_rule(
        hub,
        sensor,
        condition="OUT_OF_RANGE",
        threshold=10,
        threshold_high=90,
        severity="CRITICAL",
        deadband=2,
        delay_s=5,
    )
    assert r.status_code == 201, r.text
    rule = r.json()["data"]
    assert rule["condition"] == "OUT_OF_RANGE" and rule["threshold_high"] == 90.0
    assert rule["enabled"] is True and rule["delay_s"] == 5.0 and rule["sensor_id"] == sensor
    # the next ingest answer names the new version, and the gateway's config has the rule
    version = ingest(hub, 2, "ru/m1/temp")
    assert version > before
    got = config(hub)
    assert got["version"] == version
    mine = [x for x in got["alert_rules"] if x["id"] == rule["id"]]
    assert mine == [
        {
            "id": rule["id"],
            "key": "ru/m1/temp",
            "condition": "OUT_OF_RANGE",
            "threshold": 10.0,
            "threshold_high": 90.0,
            "severity": "CRITICAL",
            "deadband": 2.0,
            "delay_s": 5.0,
        }
    ]
    with hub.client("read") as c:
        listed = c.get(f"/api/v1/sensors/{sensor}/rules").json()["data"]
    assert rule["id"] in [x["id"] for x in listed]

    with hub.client("admin") as c:
        r = c.patch(f"/api/v1/rules/{rule['id']}", json={"threshold": 20, "enabled": False})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["threshold"] == 20.0 and r.json()["data"]["enabled"] is False
        # a disabled rule does not go down to the gateway
        assert rule["id"] not in [x["id"] for x in config(hub)["alert_rules"]]
        # to a one-sided condition: the upper threshold goes with OUT_OF_RANGE
        r = c.patch(f"/api/v1/rules/{rule['id']}", json={"condition": "GREATER_THAN"})
        assert r.status_code == 200 and r.json()["data"]["threshold_high"] is None
        v = config(hub)["version"]
        assert c.delete(f"/api/v1/rules/{rule['id']}").status_code == 204
        assert config(hub)["version"] > v
        assert c.delete(f"/api/v1/rules/{rule['id']}").status_code == 404
        assert c.patch(f"/api/v1/rules/{rule['id']}", json={"threshold": 1}).status_code == 404
        # every change is in the change log with the admin's token (invariant 9)
        params = {"target": "rule", "target_id": rule["id"]}
        log = c.get("/api/v1/audit", params=params).json()["data"]
        assert [e["action"] for e in reversed(log)] == [
            "rule.create",
            "rule.update",
            "rule.update",
            "rule.delete",
        ]
        assert {e["by"]["role"] for e in log} == {"admin"}
        assert log[-1]["detail"]["threshold"] == 10.0


def test_rules_need_admin_to_change(hub: HubProcess, sensor: int) -> None:
    body = {"condition": "GREATER_THAN", "threshold": 1}
    assert post_rule(hub, sensor, "read", **body).status_code == 403
    # an operator works alerts, it does not change settings
    hub.tokens.setdefault("operator", token(hub.config, "token", "add", "--role", "operator"))
    assert post_rule(hub, sensor, "operator", **body).status_code == 403
    with hub.client("operator") as c:
        assert c.get(f"/api/v1/sensors/{sensor}/rules").status_code == 200
        assert c.put(f"/api/v1/sensors/{sensor}/thresholds", json={"max": 1}).status_code == 403
    assert post_rule(hub, sensor, "gw1", **body).status_code == 403
    with hub.client("gw1") as c:
        assert c.get(f"/api/v1/sensors/{sensor}/rules").status_code == 403
    with httpx.Client(base_url=hub.url) as c:
        assert c.get(f"/api/v1/sensors/{sensor}/rules").status_code == 401


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({"condition": "OUT_OF_RANGE", "threshold": 10}, {"threshold_high"}),
        ({"condition": "OUT_OF_RANGE", "threshold": 10, "threshold_high": 10}, {"threshold_high"}),
        ({"condition": "OUT_OF_RANGE", "threshold": 10, "threshold_high": 5}, {"threshold_high"}),
        (
            {"condition": "OUT_OF_RANGE", "threshold": 0, "threshold_high": 10, "deadband": 6},
            {"deadband"},
        ),
        ({"condition": "GREATER_THAN", "threshold": 1, "threshold_high": 5}, {"threshold_high"}),
        ('{"condition": "GREATER_THAN", "threshold": 1e999}', {"threshold"}),
        ({"condition": "LESS_THAN", "threshold": 1, "deadband": -1}, {"deadband"}),
        (
            {"condition": "LESS_THAN", "threshold": 1, "delay_s": -1, "deadband": -2},
            {"delay_s", "deadband"},
        ),
        ({"condition": "LESS_THAN", "threshold": 1, "delay_s": 86401}, {"delay_s"}),
        ({"condition": "ABOVE", "threshold": 1}, {"condition"}),
        ({"condition": "LESS_THAN", "threshold": "high"}, {"threshold"}),
        ({"condition": "LESS_THAN", "threshold": 1, "severity": "LOUD"}, {"severity"}),
        ({"condition": "LESS_THAN", "threshold": 1, "enabled": "yes"}, {"enabled"}),
        ({"condition": "LESS_THAN"}, {"threshold"}),
        ({"threshold": 1}, {"condition"}),
        ({"condition": "LESS_THAN", "threshold": 1, "colour": "red"}, {"body"}),
    ],
)
def test_bad_rules_are_422_naming_the_field(
    hub: HubProcess, sensor: int, body: dict[str, Any] | str, bad: set[str]
) -> None:
    before = config(hub)["version"]
    if isinstance(body, str):  # JSON that Python's json cannot write (1e999)
        with hub.client("admin") as c:
            r = c.post(f"/api/v1/sensors/{sensor}/rules", content=body.encode())
    else:
        r = post_rule(hub, sensor, **body)
    assert fields(r) == bad
    assert config(hub)["version"] == before  # nothing stored


def test_bad_patch_and_paths(hub: HubProcess, sensor: int) -> None:
    rule = post_rule(hub, sensor, condition="LESS_THAN", threshold=5).json()["data"]
    with hub.client("admin") as c:
        r = c.patch(f"/api/v1/rules/{rule['id']}", json={"condition": "OUT_OF_RANGE"})
        assert fields(r) == {"threshold_high"}
        r = c.patch(f"/api/v1/rules/{rule['id']}", json={"threshold": None})
        assert fields(r) == {"threshold"}
        assert c.patch(f"/api/v1/rules/{rule['id']}", content=b"[").status_code == 400
        assert fields(c.patch(f"/api/v1/rules/{rule['id']}", content=b"")) == {"body"}
        assert c.get(f"/api/v1/rules/{rule['id']}").status_code in (404, 405)
        assert (
            c.post(
                "/api/v1/sensors/999999/rules", json={"condition": "LESS_THAN", "threshold": 1}
            ).status_code
            == 404
        )
        assert c.get("/api/v1/sensors/999999/rules").status_code == 404
        assert c.get("/api/v1/sensors/x/rules").status_code == 400
        assert c.delete("/api/v1/rules/0").status_code == 400
    with hub.client("read") as c:
        stored = c.get(f"/api/v1/sensors/{sensor}/rules").json()["data"]
    assert next(x for x in stored if x["id"] == rule["id"])["condition"] == "LESS_THAN"

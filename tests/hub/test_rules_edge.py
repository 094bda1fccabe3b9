"""Alert rules set at a real hub reach the edge's Rust engine through the gateway config, fire
there with no hub (after a restart too: the last config is persisted), move their one alert's
severity up and down in place, honour the on-delay and the deadband, and come back to the hub
as one fleet alert that names its rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import threshold_checker as tc
from agent.buffer import Buffer, Reading
from agent.rules import Alerting, Rules, _decode_config, wire_alert
from shared.wire import Batch, WireReading, encode_batch
from tests.agent.conftest import make_config
from tests.edge_alerts import RECENT_T0
from tests.hub.conftest import HubProcess

KEY = "edge/m1/temp"
# Recent: an alert the hub keeps active from 2023 would be marked stale by its alert watch.
T0 = RECENT_T0


@pytest.fixture(scope="module")
def sensor(hub: HubProcess) -> int:
    body = encode_batch(Batch(gateway_id="gw-01", readings=[WireReading(1, KEY, T0, 20.0, None)]))
    with hub.client("gw1") as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
    with hub.client("read") as c:
        return int(c.get("/api/v1/sensors", params={"key": KEY}).json()["data"][0]["id"])


def add_rule(hub: HubProcess, sensor: int, **body: Any) -> dict[str, Any]:
    with hub.client("admin") as c:
        r = c.post(f"/api/v1/sensors/{sensor}/rules", json=body)
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_hub_rules_fire_at_the_edge_offline(hub: HubProcess, sensor: int, tmp_path: Path) -> None:
    warn = add_rule(
        hub, sensor, condition="GREATER_THAN", threshold=80, severity="WARNING", deadband=5
    )
    crit = add_rule(
        hub, sensor, condition="GREATER_THAN", threshold=95, severity="CRITICAL", delay_s=10
    )
    # The gateway fetches its config as the agent does, with its own token.
    with hub.client("gw1") as c:
        raw = c.get("/api/v1/gateways/gw-01/config").content
    config = _decode_config(raw).data
    assert {r.id for r in config.alert_rules} >= {warn["id"], crit["id"]}

    cfg = make_config(tmp_path)
    buffer = Buffer(cfg.buffer.path)
    rules = Rules(cfg, buffer)
    assert rules.apply_hub(config)
    alerting = Alerting(cfg, buffer, rules)

    def feed(*points: tuple[float, float]) -> list[tuple[str, str]]:
        readings = [Reading(KEY, T0 + ts, v, None, 0.0) for ts, v in points]
        rows = buffer.append(readings, derive_alerts=alerting.derive).alerts
        return [(a.event, a.severity) for a in rows if a.rule == "rule"]

    assert feed((1, 85.0)) == [("open", "warning")]
    # 99 must hold for 10 s before the CRITICAL rule fires (on-delay)
    assert feed((2, 99.0), (11, 99.0)) == []
    assert feed((12, 99.0)) == [("update", "critical")]

    # Restart with the hub out of reach: the persisted config still drives the engine,
    # and the excursion in progress stays the same alert.
    buffer.close()
    buffer = Buffer(cfg.buffer.path)
    alerting = Alerting(cfg, buffer, Rules(cfg, buffer))
    assert len(alerting.engine.alert_rules()[KEY]) == 2
    assert feed((13, 90.0)) == [("update", "warning")]  # de-escalated in place
    assert feed((14, 77.0)) == []  # inside the 5-unit deadband: still firing
    assert feed((15, 74.0)) == [("close", "warning")]

    # Synced to the hub, it is one fleet alert of kind "rule" that names the rule.
    rows = buffer.claim_alerts(10)
    assert len(rows) == 1
    body = encode_batch(
        Batch(gateway_id="gw-01", readings=[], alerts=[wire_alert(r) for r in rows])
    )
    with hub.client("gw1") as c:
        assert c.post("/api/v1/ingest", content=body).status_code == 200
    with hub.client("read") as c:
        found = c.get("/api/v1/alerts", params={"sensor_id": sensor, "kind": "rule"}).json()
    [alert] = found["data"]
    assert alert["state"] == "cleared" and alert["severity"] == "warning"
    assert alert["rule_id"] == warn["id"]
    buffer.close()


def test_each_alert_names_the_rule_that_fired(hub: HubProcess, tmp_path: Path) -> None:
    """Two rules alike in severity and threshold: only the edge knows which one fired."""
    key = "edge/m2/level"
    body = encode_batch(Batch(gateway_id="gw-01", readings=[WireReading(2, key, T0, 50.0)]))
    with hub.client("gw1") as c:
        assert c.post("/api/v1/ingest", content=body).status_code == 200
    with hub.client("read") as c:
        sensor = int(c.get("/api/v1/sensors", params={"key": key}).json()["data"][0]["id"])
    high = add_rule(hub, sensor, condition="GREATER_THAN", threshold=80, severity="WARNING")
    low = add_rule(hub, sensor, condition="LESS_THAN", threshold=80, severity="WARNING")
    with hub.client("gw1") as c:
        config = _decode_config(c.get("/api/v1/gateways/gw-01/config").content).data
    cfg = make_config(tmp_path)
    buffer = Buffer(cfg.buffer.path)
    rules = Rules(cfg, buffer)
    rules.apply_hub(config)
    alerting = Alerting(cfg, buffer, rules)
    # 90 fires the first rule, 80 neither (its alert closes), 70 the second: two alerts
    points = [(1.0, 90.0), (2.0, 80.0), (3.0, 70.0)]
    readings = [Reading(key, T0 + ts, v, None, 0.0) for ts, v in points]
    buffer.append(readings, derive_alerts=alerting.derive)
    rows = [r for r in buffer.claim_alerts(10) if r.key == key]
    assert [(r.rule_id, r.closed_at is None) for r in rows] == [
        (high["id"], False),
        (low["id"], True),
    ]
    # (ids past those the module's other tests sent for this gateway)
    wire = [msgspec.structs.replace(wire_alert(r), id=r.id + 100) for r in rows]
    # An agent from before rule_id sends none: the hub infers it (the first rule alike) ...
    old = msgspec.structs.replace(wire[1], id=wire[1].id + 1000, opened_at=T0 + 4, rule_id=None)
    # ... as it does for a rule that is not one of the sensor's (logged, not refused).
    other = msgspec.structs.replace(
        wire[1], id=wire[1].id + 2000, opened_at=T0 + 5, rule_id=999_999
    )
    body = encode_batch(Batch(gateway_id="gw-01", readings=[], alerts=[*wire, old, other]))
    with hub.client("gw1") as c:
        r = c.post("/api/v1/ingest", content=body)
        assert r.status_code == 200, r.text
    with hub.client("read") as c:
        found = c.get("/api/v1/alerts", params={"sensor_id": sensor}).json()["data"]
        named = sorted((a["opened_at"], a["rule_id"], a["id"]) for a in found)
        # the last two join the sensor's alert still active (one alarm per sensor): their
        # journal entries name the rule each stands for
        assert [rule for _, rule, _ in named] == [high["id"], low["id"]]
        journal = c.get(f"/api/v1/alerts/{named[1][2]}").json()["data"]["journal"]
    joined = [e["comment"] for e in journal if e["action"] == "source_opened"]
    assert joined == [f"rule #{high['id']} below_minimum 80 (warning)"] * 2
    buffer.close()


def test_engine_refuses_what_the_hub_would_refuse() -> None:
    for args in (
        ("OUT_OF_RANGE", 10.0, None),
        ("OUT_OF_RANGE", 10.0, 5.0),
        ("GREATER_THAN", 10.0, 20.0),
        ("ABOVE", 1.0, None),
        ("GREATER_THAN", float("inf"), None),
    ):
        with pytest.raises(ValueError):
            tc.AlertRule(*args)
    with pytest.raises(ValueError):
        tc.AlertRule("LESS_THAN", 1.0, severity="LOUD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tc.AlertRule("LESS_THAN", 1.0, delay_s=-1.0)
    engine = tc.RuleEngine()
    with pytest.raises(ValueError):
        engine.set_alert_rules({"l/+/t": [tc.AlertRule("LESS_THAN", 1.0)]})
    with pytest.raises(TypeError):
        engine.set_alert_rules({"l/m/t": [tc.Rule(max=1.0)]})  # type: ignore[list-item]


def test_out_of_range_crosses_sides_as_one_alert() -> None:
    engine = tc.RuleEngine()
    engine.set_alert_rules(
        {"l/m/t": [tc.AlertRule("OUT_OF_RANGE", 10.0, 90.0, "CRITICAL", deadband=1.0)]}
    )
    events = engine.process(
        [(i, "l/m/t", float(i), v) for i, v in enumerate([50.0, 95.0, 5.0, 10.5, 11.0])]
    )
    assert [(e.kind, e.breach_type, e.threshold_value) for e in events] == [
        ("open", "above_maximum", 90.0),
        ("update", "below_minimum", 10.0),
        ("close", "below_minimum", 10.0),
    ]
    assert all(e.rule == "rule" and e.severity == "critical" for e in events)
    # the rules gone: an open rule alert closes
    engine.process([(9, "l/m/t", 9.0, 0.0)])
    [closed] = engine.set_alert_rules({})
    assert closed.kind == "close" and closed.rule == "rule"

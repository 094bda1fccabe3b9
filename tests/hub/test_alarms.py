"""The alert lifecycle through a real hub, on both engines: edge alerts become fleet alerts,
severity moves in place, operators acknowledge and shelve with a comment, every transition
is journaled, and GET /alerts filters and pages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.hub.conftest import HubProcess, token

# An hour ago: an alert opened further back than [alarms] stale_after_s (a day) would be
# marked stale by the hub's alert watch at any moment of a test, racing its journal checks.
T0 = time.time() - 3600
_alert_ids = count(1)
_seqs = count(1)


@pytest.fixture(scope="module")
def ops(hub: HubProcess) -> HubProcess:
    """The module's hub with an operator token too."""
    hub.tokens.setdefault(
        "operator",
        token(hub.config, "token", "add", "--role", "operator", "--name", "control room"),
    )
    return hub


def send(
    hub: HubProcess, alert: WireAlert, gateway: str = "gw-01", who: str = "gw1"
) -> dict[str, Any]:
    seq = next(_seqs)
    body = encode_batch(
        Batch(
            gateway_id=gateway,
            readings=[WireReading(seq, alert.key, T0 + seq, alert.value, None)],
            alerts=[alert],
        )
    )
    with hub.client(who) as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def edge_alert(key: str, **kw: Any) -> WireAlert:
    fields: dict[str, Any] = {
        "id": next(_alert_ids),
        "key": key,
        "rule": "threshold",
        "breach_type": "above_maximum",
        "severity": "medium",
        "threshold_value": 80.0,
        "value": 85.0,
        "opened_at": T0,
    }
    fields.update(kw)
    return WireAlert(**fields)


def alerts(hub: HubProcess, who: str = "read", **params: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.get("/api/v1/alerts", params=params)


def the_alert(hub: HubProcess, sensor_key: str) -> dict[str, Any]:
    with hub.client("read") as c:
        sensor = c.get("/api/v1/sensors", params={"key": sensor_key}).json()["data"][0]
    rows = alerts(hub, sensor_id=sensor["id"]).json()["data"]
    assert len(rows) == 1, rows
    return rows[0]  # type: ignore[no-any-return]


def act(hub: HubProcess, who: str, alert_id: int, action: str, **body: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.post(f"/api/v1/alerts/{alert_id}/{action}", json=body)


def detail(hub: HubProcess, alert_id: int) -> dict[str, Any]:
    with hub.client("read") as c:
        r = c.get(f"/api/v1/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def test_edge_alert_becomes_a_fleet_alert_with_a_journal(ops: HubProcess) -> None:
    a = edge_alert("lc/m1/temp")
    send(ops, a)
    alert = the_alert(ops, "lc/m1/temp")
    assert alert["kind"] == "threshold"
    assert alert["state"] == "active" and alert["acknowledged"] is False
    assert alert["status"] == "active_unack"
    # the edge's "medium" on the one scale
    assert alert["gateway_id"] == "gw-01" and alert["severity"] == "warning"
    assert alert["value"] == 85.0 and alert["threshold_value"] == 80.0
    # a re-sent batch changes nothing
    send(ops, a)
    assert [e["action"] for e in detail(ops, alert["id"])["journal"]] == ["opened"]


def test_severity_escalates_and_de_escalates_in_place(ops: HubProcess) -> None:
    a = edge_alert("lc/m2/temp")
    send(ops, a)
    alert_id = the_alert(ops, "lc/m2/temp")["id"]
    send(ops, edge_alert("lc/m2/temp", id=a.id, severity="critical", value=130.0))
    assert detail(ops, alert_id)["severity"] == "critical"
    send(ops, edge_alert("lc/m2/temp", id=a.id, severity="high", value=112.0))
    send(ops, edge_alert("lc/m2/temp", id=a.id, severity="high", value=112.0, closed_at=T0 + 9))
    got = detail(ops, alert_id)
    assert got["state"] == "cleared" and got["severity"] == "warning"
    assert got["cleared_at"] is not None
    journal = [(e["action"], e["severity"]) for e in got["journal"]]
    assert journal == [
        ("opened", "warning"),
        ("escalated", "critical"),
        ("de-escalated", "warning"),
        ("cleared", "warning"),
    ]
    gateway = {"kind": "gateway", "name": "gw-01", "display": None, "role": "gateway"}
    assert all(e["by"] == {**gateway, "token_id": None} for e in got["journal"])
    # still one alert: the excursion moved in place
    assert the_alert(ops, "lc/m2/temp")["id"] == alert_id


def test_acknowledge_and_shelve_by_operator_with_comments(ops: HubProcess) -> None:
    send(ops, edge_alert("lc/m3/temp"))
    alert_id = the_alert(ops, "lc/m3/temp")["id"]
    assert error(act(ops, "read", alert_id, "ack", comment="x"), 403)["code"] == "forbidden"
    r = act(ops, "operator", alert_id, "ack", comment="on it")
    assert r.status_code == 200, r.text
    acked = r.json()["data"]
    assert acked["acknowledged"] is True and acked["status"] == "active_ack"
    assert acked["acknowledged_at"] is not None
    assert acked["acknowledged_by"]["role"] == "operator"
    assert acked["acknowledged_by"]["kind"] == "token"
    assert acked["acknowledged_by"]["name"] == "control room"
    assert "already" in error(act(ops, "admin", alert_id, "ack"), 409)["message"]

    r = act(ops, "operator", alert_id, "shelve", duration_s=3600, comment="maintenance")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["shelved"] is True and r.json()["data"]["shelved_until"]
    r = act(ops, "admin", alert_id, "unshelve", comment="done")
    assert r.status_code == 200 and r.json()["data"]["shelved"] is False
    assert error(act(ops, "admin", alert_id, "unshelve"), 409)["code"] == "conflict"

    journal = detail(ops, alert_id)["journal"]
    assert [(e["action"], e["comment"]) for e in journal] == [
        ("opened", None),
        ("acknowledged", "on it"),
        ("shelved", "maintenance"),
        ("unshelved", "done"),
    ]
    op_token, admin_token = journal[1]["by"], journal[3]["by"]
    assert op_token["role"] == "operator" and isinstance(op_token["token_id"], int)
    assert admin_token["role"] == "admin" and admin_token["token_id"] != op_token["token_id"]
    # a token is named by its label, and one made without a label by none
    assert (op_token["kind"], op_token["name"], op_token["display"]) == (
        "token",
        "control room",
        None,
    )
    assert (admin_token["kind"], admin_token["name"]) == ("token", None)
    assert all(e["at"] for e in journal)
    # the change log has them too, with the same tokens (invariant 9)
    with ops.client("admin") as c:
        log = c.get("/api/v1/audit", params={"target": "alert", "target_id": alert_id}).json()
    assert [(e["action"], e["by"]["role"], e["by"]["name"]) for e in reversed(log["data"])] == [
        ("alert.ack", "operator", "control room"),
        ("alert.shelve", "operator", "control room"),
        ("alert.unshelve", "admin", None),
    ]


def test_bad_lifecycle_requests(ops: HubProcess) -> None:
    send(ops, edge_alert("lc/m4/temp"))
    alert_id = the_alert(ops, "lc/m4/temp")["id"]
    for duration in (0, -5, 7 * 86400 + 1):
        err = error(act(ops, "operator", alert_id, "shelve", duration_s=duration), 422)
        assert err["details"][0]["field"] == "duration_s"
    err = error(act(ops, "operator", alert_id, "shelve", comment="no duration"), 422)
    assert err["details"][0]["field"] == "duration_s"
    err = error(act(ops, "operator", alert_id, "ack", comment="x" * 2001), 422)
    assert err["details"][0]["field"] == "comment"
    err = error(act(ops, "operator", alert_id, "ack", colour="red"), 422)
    assert "colour" in err["message"]
    with ops.client("operator") as c:
        r = c.post(f"/api/v1/alerts/{alert_id}/ack", content=b"{nope")
        assert error(r, 400)["code"] == "invalid_json"
        assert error(c.post("/api/v1/alerts/999999/ack", json={}), 404)["code"] == "not_found"
        assert error(c.post("/api/v1/alerts/abc/ack", json={}), 400)["details"]
        assert error(c.get("/api/v1/alerts/0"), 400)
    # a cleared alert is not shelved (nothing left to silence)
    send(ops, edge_alert("lc/m5/temp", closed_at=T0 + 1))
    cleared = the_alert(ops, "lc/m5/temp")
    assert cleared["state"] == "cleared"
    assert error(act(ops, "operator", cleared["id"], "shelve", duration_s=60), 409)
    # nothing of the refused requests reached the journal
    assert [e["action"] for e in detail(ops, alert_id)["journal"]] == ["opened"]


def test_fleet_list_filters_and_pages(ops: HubProcess) -> None:
    for i in range(5):
        alert = edge_alert(f"pg/m{i}/temp", opened_at=T0 + 100 + i, severity="high")
        send(ops, alert, "gw-02", "gw2")
    send(ops, edge_alert("pg/other/temp", opened_at=T0 + 200, severity="critical"), "gw-03", "gw3")
    r = alerts(ops, gateway_id="gw-02", severity="HIGH", per_page=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["opened_at"] for a in body["data"]] == sorted(
        (a["opened_at"] for a in body["data"]), reverse=True
    )
    meta, links = body["meta"], body["links"]
    assert meta["page"] == 1 and meta["per_page"] == 2
    assert meta["total"] == 5 and meta["total_pages"] == 3
    assert "page=2" in links["next"] and "page=3" in links["last"]
    assert "gateway_id=gw-02" in links["next"]
    last = alerts(ops, gateway_id="gw-02", severity="high", per_page=2, page=3).json()
    assert len(last["data"]) == 1 and last["links"]["next"] is None
    only = alerts(ops, gateway_id="gw-03").json()["data"]
    assert {a["gateway_id"] for a in only} == {"gw-03"}
    assert all(a["severity"] == "critical" for a in only)
    factory = only[0]["factory_id"]
    assert {a["factory_id"] for a in alerts(ops, factory_id=factory).json()["data"]} == {factory}
    unacked = alerts(ops, acknowledged="false", state="active", per_page=1000).json()["data"]
    assert unacked and all(not a["acknowledged"] and a["state"] == "active" for a in unacked)
    acked = alerts(ops, acknowledged="true", per_page=1000).json()["data"]
    assert all(a["acknowledged"] for a in acked)
    for params in (
        {"state": "open"},
        {"acknowledged": "maybe"},
        {"severity": "loud"},
        {"sensor_id": "x"},
        {"factory_id": "-1"},
        {"per_page": "1001"},
        {"page": "0"},
    ):
        err = error(alerts(ops, **params), 400)
        assert err["details"][0]["param"] == next(iter(params))
    assert error(alerts(ops, who="gw1"), 403)


@pytest.fixture
def rule_sensor(ops: HubProcess) -> Iterator[int]:
    send(ops, edge_alert("rl/m1/temp", value=1.0, closed_at=T0))
    with ops.client("read") as c:
        yield c.get("/api/v1/sensors", params={"key": "rl/m1/temp"}).json()["data"][0]["id"]


def test_rule_alert_names_its_rule(ops: HubProcess, rule_sensor: int) -> None:
    with ops.client("admin") as c:
        warn = c.post(
            f"/api/v1/sensors/{rule_sensor}/rules",
            json={"condition": "GREATER_THAN", "threshold": 80, "severity": "WARNING"},
        ).json()["data"]
        crit = c.post(
            f"/api/v1/sensors/{rule_sensor}/rules",
            json={"condition": "GREATER_THAN", "threshold": 95, "severity": "CRITICAL"},
        ).json()["data"]
    a = edge_alert("rl/m1/temp", rule="rule", severity="warning", value=85.0)
    send(ops, a)
    alert = [x for x in alerts(ops, sensor_id=rule_sensor).json()["data"] if x["kind"] == "rule"]
    assert len(alert) == 1 and alert[0]["rule_id"] == warn["id"]
    send(
        ops,
        edge_alert(
            "rl/m1/temp",
            id=a.id,
            rule="rule",
            severity="critical",
            value=99.0,
            threshold_value=95.0,
        ),
    )
    got = detail(ops, alert[0]["id"])
    assert got["rule_id"] == crit["id"] and got["severity"] == "critical"

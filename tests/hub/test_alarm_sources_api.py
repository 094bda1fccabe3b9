"""One spike, one alarm, through a real hub on both engines: a sync batch carrying the edge's
threshold alert and rule alert of one spike is ONE alert at the rule's critical, and the alarm
roll-up and the alarm report count it once; when both clear, it clears."""

from __future__ import annotations

from shared.timeutil import now
from shared.wire import Batch, WireAlert, WireReading
from tests.hub.conftest import HubProcess
from tests.hub.test_alarm_sources import rule, threshold
from tests.hub.test_api import get
from tests.hub.test_report_api import ingest, sensor_of

API = "/api/v1"
KEY = "once/press/temp"


def _alerts(t: float, rule_id: int, closed_at: float | None = None) -> list[WireAlert]:
    """The edge's two alerts of a spike to 130: its threshold (max 120, medium) and its
    CRITICAL rule above 100."""
    return [
        threshold(9101, t, key=KEY, closed_at=closed_at),
        rule(9102, rule_id, t, key=KEY, closed_at=closed_at),
    ]


def test_a_spike_seen_twice_is_one_alarm_in_the_roll_up_and_the_report(hub: HubProcess) -> None:
    t = now() - 3600  # recent: the alert watch would mark an older one stale
    ingest(hub, Batch(gateway_id="gw-01", readings=[WireReading(9100, KEY, t - 60, 40.0, "C")]))
    sensor = sensor_of(hub, KEY)
    with hub.client("admin") as c:
        r = c.post(
            f"{API}/sensors/{sensor}/rules",
            json={"condition": "GREATER_THAN", "threshold": 100.0, "severity": "CRITICAL"},
        )
    assert r.status_code == 201, r.text
    rule_id = int(r.json()["data"]["id"])
    spike = [WireReading(9101, KEY, t, 130.0, "C")]
    ingest(hub, Batch(gateway_id="gw-01", readings=spike, alerts=_alerts(t, rule_id)))

    [alarm] = get(hub, f"{API}/alerts", sensor_id=sensor).json()["data"]
    assert (alarm["state"], alarm["severity"], alarm["kind"]) == ("active", "critical", "rule")
    assert alarm["rule_id"] == rule_id
    detail = get(hub, f"{API}/alerts/{alarm['id']}").json()["data"]
    assert [(j["action"], j["severity"]) for j in detail["journal"]] == [
        ("opened", "warning"),
        ("escalated", "critical"),
    ]
    # the edge's own record keeps both, with the grades it gave them
    edge = get(hub, f"{API}/sensors/{sensor}/alerts").json()["data"]["edge_alerts"]
    assert sorted(a["severity"] for a in edge) == ["critical", "medium"]

    machine = get(hub, f"{API}/sensors/{sensor}").json()["data"]["machine_id"]
    summary = get(hub, f"{API}/alarm-summary", machine_id=machine).json()["data"]
    assert summary["alarms"]["active"] == 1 and summary["alarms"]["unacknowledged"] == 1
    assert summary["alarms"]["worst_severity"] == "critical"

    factory = alarm["factory_id"]
    report = get(hub, f"{API}/alarm-report", factory_id=factory, **{"from": t - 60}).json()
    assert report["data"]["alarms"] == 1
    assert report["data"]["severity_mix"] == {"critical": {"count": 1, "share": 1.0}}

    cleared = _alerts(t, rule_id, closed_at=t + 30)
    ingest(
        hub,
        Batch(
            gateway_id="gw-01", readings=[WireReading(9102, KEY, t + 30, 40.0, "C")], alerts=cleared
        ),
    )
    [alarm] = get(hub, f"{API}/alerts", sensor_id=sensor).json()["data"]
    assert alarm["state"] == "cleared"
    summary = get(hub, f"{API}/alarm-summary", machine_id=machine).json()["data"]
    assert summary["alarms"]["active"] == 0

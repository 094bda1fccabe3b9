"""One spike, one alarm, on both engines: the edge alerts of one sensor active at the same time
(a threshold and a hub rule) are the sources of ONE fleet alert whose severity is that of its
most severe source, on the one scale (info < warning < critical; the edge's threshold grades
medium and high are warnings). An escalation is journaled naming the source, withdraws an
acknowledgement and is announced again; the alarm clears when its last source clears."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from hub.storage import GatewayReport, Storage
from hub.storage.alerts import Actor, AlertFilter
from hub.storage.rules import RuleSpec
from shared.timeutil import now
from shared.wire import WireAlert, WireReading

REPORT = GatewayReport(0, 0, 0, "test")
KEY = "spike/press/temp"
OPERATOR = Actor(7, "operator")


@pytest.fixture
def plant(storage: Storage) -> Iterator[tuple[int, int, int, int]]:
    """(gateway, factory, sensor, the sensor's CRITICAL rule above 100)."""
    gw = storage.add_gateway("gw-spike", "plant", "hs")
    factory = int(storage.list_gateways()[0]["factory_id"])
    storage.store_batch(gw, factory, [WireReading(1, KEY, now() - 3600, 40.0, None)], REPORT)
    sensor = int(storage.list_sensors()[0]["id"])
    spec = RuleSpec("GREATER_THAN", 100.0, None, "CRITICAL", True, 5.0, 0.0)
    added = storage.rules.add_rule(sensor, spec)
    assert added is not None
    yield gw, factory, sensor, int(added[0]["id"])


def threshold(alert_id: int, opened_at: float, **changes: Any) -> WireAlert:
    """The edge's threshold alert of a spike to 130 past a maximum of 120 (8 %: medium)."""
    a = WireAlert(
        id=alert_id,
        key=KEY,
        rule="threshold",
        breach_type="above_maximum",
        severity="medium",
        threshold_value=120.0,
        value=130.0,
        opened_at=opened_at,
    )
    return msgspec.structs.replace(a, **changes)


def rule(alert_id: int, rule_id: int, opened_at: float, **changes: Any) -> WireAlert:
    """The edge's alert of the sensor's CRITICAL rule above 100, for the same spike."""
    a = WireAlert(
        id=alert_id,
        key=KEY,
        rule="rule",
        breach_type="above_maximum",
        severity="critical",
        threshold_value=100.0,
        value=130.0,
        opened_at=opened_at,
        rule_id=rule_id,
    )
    return msgspec.structs.replace(a, **changes)


def send(storage: Storage, plant: tuple[int, int, int, int], seq: int, *alerts: WireAlert) -> None:
    gw, factory, _, _ = plant
    reading = WireReading(seq, KEY, alerts[0].opened_at, alerts[0].value, None)
    storage.store_batch(gw, factory, [reading], REPORT, list(alerts))


def alarms(storage: Storage) -> list[dict[str, Any]]:
    rows, total = storage.list_alerts(AlertFilter(), 0, 100)
    assert total == len(rows)
    return rows


def journal(storage: Storage, alert_id: int) -> list[tuple[str, str | None, str | None]]:
    return [(e["action"], e["severity"], e["comment"]) for e in storage.alert_journal(alert_id)]


def events(storage: Storage) -> list[tuple[str, bool, str]]:
    out = []
    for e in storage.alert_events_after(0, 1000):
        payload = json.loads(e["payload"])
        out.append((e["event"], bool(payload.get("escalated")), str(payload["severity"])))
    return out


def test_a_spike_seen_by_a_threshold_and_a_rule_is_one_alarm_at_the_highest_severity(
    storage: Storage, plant: tuple[int, int, int, int]
) -> None:
    t = now() - 600
    _, _, sensor, rule_id = plant
    send(storage, plant, 2, threshold(1, t), rule(2, rule_id, t + 1))
    [alarm] = alarms(storage)
    assert alarm["sensor_id"] == sensor and alarm["state"] == "active"
    assert alarm["severity"] == "critical"
    # the rule decides it now: its kind, rule and threshold
    assert (alarm["kind"], alarm["rule_id"], alarm["threshold_value"]) == ("rule", rule_id, 100.0)
    assert journal(storage, int(alarm["id"])) == [
        ("opened", "warning", None),
        ("escalated", "critical", f"rule #{rule_id} above_maximum 100 (critical)"),
    ]
    assert events(storage) == [
        ("alert.opened", False, "warning"),
        ("alert.opened", True, "critical"),
    ]
    # a re-send of both changes nothing
    send(storage, plant, 3, threshold(1, t), rule(2, rule_id, t + 1))
    assert len(alarms(storage)) == 1 and len(journal(storage, int(alarm["id"]))) == 2


def test_an_acknowledged_alarm_escalated_by_a_second_source_is_unacknowledged(
    storage: Storage, plant: tuple[int, int, int, int]
) -> None:
    t = now() - 600
    _, _, _, rule_id = plant
    send(storage, plant, 2, threshold(1, t))
    [alarm] = alarms(storage)
    alarm_id = int(alarm["id"])
    assert alarm["severity"] == "warning"
    assert storage.acknowledge_alert(alarm_id, OPERATOR, "seen") is not None
    send(storage, plant, 3, rule(2, rule_id, t + 5))
    [alarm] = alarms(storage)
    assert alarm["severity"] == "critical" and not alarm["acknowledged"]
    assert alarm["acknowledged_at"] is None and alarm["acknowledged_by"] is None
    assert [a for a, _, _ in journal(storage, alarm_id)] == [
        "opened",
        "acknowledged",
        "escalated",
        "unacknowledged",
    ]
    assert [e for e, _, _ in events(storage)] == [
        "alert.opened",
        "alert.acknowledged",
        "alert.opened",
    ]
    assert events(storage)[-1] == ("alert.opened", True, "critical")
    # acknowledged again at the higher severity
    assert storage.acknowledge_alert(alarm_id, OPERATOR, "on it") is not None


def test_a_lower_second_source_joins_without_escalating(
    storage: Storage, plant: tuple[int, int, int, int]
) -> None:
    t = now() - 600
    _, _, _, rule_id = plant
    send(storage, plant, 2, rule(2, rule_id, t))
    [alarm] = alarms(storage)
    storage.acknowledge_alert(int(alarm["id"]), OPERATOR, "seen")
    send(storage, plant, 3, threshold(1, t + 1, severity="high"))
    [alarm] = alarms(storage)
    assert alarm["severity"] == "critical" and alarm["acknowledged"]
    assert alarm["kind"] == "rule"
    assert journal(storage, int(alarm["id"]))[-1] == (
        "source_opened",
        "warning",
        "threshold above_maximum 120 (high at the edge)",
    )
    assert [e for e, _, _ in events(storage)] == ["alert.opened", "alert.acknowledged"]


@pytest.mark.parametrize("which", ["threshold", "rule"])
def test_each_source_alone_opens_one_alarm(
    storage: Storage, plant: tuple[int, int, int, int], which: str
) -> None:
    t = now() - 600
    _, _, _, rule_id = plant
    alone = threshold(1, t) if which == "threshold" else rule(2, rule_id, t)
    send(storage, plant, 2, alone)
    [alarm] = alarms(storage)
    assert alarm["kind"] == which
    assert alarm["severity"] == ("warning" if which == "threshold" else "critical")
    send(storage, plant, 3, msgspec.structs.replace(alone, closed_at=t + 30))
    [alarm] = alarms(storage)
    assert alarm["state"] == "cleared" and alarm["cleared_at"] == t + 30


def test_the_alarm_clears_when_every_source_has_cleared(
    storage: Storage, plant: tuple[int, int, int, int]
) -> None:
    t = now() - 600
    _, _, _, rule_id = plant
    send(storage, plant, 2, threshold(1, t), rule(2, rule_id, t + 1))
    [alarm] = alarms(storage)
    alarm_id = int(alarm["id"])
    # the rule (critical) clears first: the threshold's warning stays
    send(storage, plant, 3, rule(2, rule_id, t + 1, closed_at=t + 20))
    [alarm] = alarms(storage)
    assert alarm["state"] == "active" and alarm["severity"] == "warning"
    assert (alarm["kind"], alarm["rule_id"], alarm["threshold_value"]) == ("threshold", None, 120.0)
    assert journal(storage, alarm_id)[-1] == (
        "de-escalated",
        "warning",
        f"rule #{rule_id} above_maximum 100 (critical) cleared; "
        "threshold above_maximum 120 (medium at the edge) stays",
    )
    # a new spike while it stands joins it again
    send(storage, plant, 4, rule(3, rule_id, t + 40))
    [alarm] = alarms(storage)
    assert alarm["severity"] == "critical"
    send(storage, plant, 5, threshold(1, t, closed_at=t + 50))
    [alarm] = alarms(storage)
    assert alarm["state"] == "active" and journal(storage, alarm_id)[-1][0] == "source_cleared"
    send(storage, plant, 6, rule(3, rule_id, t + 40, closed_at=t + 60))
    [alarm] = alarms(storage)
    assert alarm["state"] == "cleared" and alarm["cleared_at"] == t + 60
    assert [e for e, _, _ in events(storage)] == [
        "alert.opened",
        "alert.opened",
        "alert.opened",
        "alert.cleared",
    ]
    # after the clear, the next spike is a new alarm
    send(storage, plant, 7, threshold(4, t + 100))
    assert [a["state"] for a in alarms(storage)] == ["active", "cleared"]


def test_old_names_filter_on_the_scale(storage: Storage, plant: tuple[int, int, int, int]) -> None:
    send(storage, plant, 2, threshold(1, now() - 600, severity="high"))
    for asked in ("high", "medium", "warning", "WARNING"):
        rows, total = storage.list_alerts(AlertFilter(severity=asked), 0, 10)
        assert total == 1 and rows[0]["severity"] == "warning", asked
    assert storage.list_alerts(AlertFilter(severity="critical"), 0, 10)[1] == 0

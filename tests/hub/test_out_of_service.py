"""Out of service (ISA-18.2 "removed from service") in storage, on both engines: a sensor
out of service (its own record, or its machine in MAINTENANCE or OFFLINE) gets no new alert
at the hub and none of its alerts is announced, its readings are still stored; back in
service, an alert still active is announced again and an edge alert still active that was
held back is opened; each act is journaled and audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from hub.alert_view import alert_view
from hub.storage import Conflict, GatewayReport, Storage
from hub.storage.alerts import AlertFilter
from hub.storage.changelog import Actor
from shared.wire import WireAlert, WireReading
from tests.edge_alerts import RECENT_T0, threshold_alert
from tests.hub.conftest import query

REPORT = GatewayReport(0, 0, 0, "test")
KEY = "oos/m1/temp"
OPERATOR = Actor(7, "operator", "token", "control room")
# A person signed in: their acts carry their name, not a token id.
ADMIN = Actor(None, "admin", "user", "anna", "Anna Berg")
OPEN = threshold_alert(KEY, RECENT_T0)


class Edge:
    """One gateway sending batches; its sensor's id once the first batch made it."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.gateway = storage.add_gateway("gw-oos", "plant", "h")
        self.factory = int(storage.list_gateways()[0]["factory_id"])
        self.seq = 0

    def send(self, *alerts: WireAlert, key: str = KEY) -> None:
        self.seq += 1
        reading = WireReading(self.seq, key, OPEN.opened_at + self.seq, 90.0, None)
        self.storage.store_batch(self.gateway, self.factory, [reading], REPORT, list(alerts))

    def sensor(self, key: str = KEY) -> int:
        [row] = [s for s in self.storage.list_sensors() if s["key"] == key]
        return int(row["id"])


@pytest.fixture
def edge(storage: Storage) -> Iterator[Edge]:
    yield Edge(storage)


def alerts(storage: Storage) -> list[dict[str, Any]]:
    return storage.list_alerts(AlertFilter(), 0, 100)[0]


def events(storage: Storage) -> list[tuple[str, bool, int]]:
    out = []
    for e in storage.alert_events_after(0, 1000):
        payload = json.loads(e["payload"])
        out.append((e["event"], bool(payload.get("reannounced", False)), int(e["alert_id"])))
    return out


def actions(storage: Storage, alert_id: int) -> list[str]:
    return [e["action"] for e in storage.alert_journal(alert_id)]


def test_no_alert_opens_while_out_of_service_and_an_active_one_opens_when_back(
    storage: Storage, edge: Edge
) -> None:
    edge.send()  # the sensor exists from its first reading
    sensor = edge.sensor()
    state = storage.service.take_out(sensor, OPERATOR, "recalibration")
    assert state is not None and state["sensor"]["comment"] == "recalibration"
    edge.send(OPEN)
    edge.send(msgspec.structs.replace(OPEN, id=2, breach_type="below_minimum"))
    edge.send(msgspec.structs.replace(OPEN, id=2, breach_type="below_minimum", closed_at=1e9 + 1))
    assert alerts(storage) == [] and events(storage) == []
    # the readings are stored as always
    assert storage.stats(sensor, None, None)[3] == 4
    held = query(storage, "SELECT alert_id FROM edge_alerts WHERE suppressed ORDER BY alert_id")
    assert [r[0] for r in held] == [1, 2]
    # back in service: the edge's alert 1 is still active, so it opens now; 2 closed meanwhile
    assert storage.service.put_back(sensor, OPERATOR, "done") is not None
    [row] = alerts(storage)
    assert row["edge_alert_id"] == 1 and row["state"] == "active"
    assert events(storage) == [("alert.opened", False, row["id"])]
    [opened] = storage.alert_journal(row["id"])
    assert (opened["action"], opened["role"], opened["comment"]) == (
        "opened",
        "operator",
        "back in service",
    )
    assert alert_view(row)["out_of_service"] is False
    # and it goes on as any alert: its clear is announced
    edge.send(msgspec.structs.replace(OPEN, closed_at=OPEN.opened_at + 60))
    assert [e[0] for e in events(storage)] == ["alert.opened", "alert.cleared"]


def test_an_active_alert_is_suppressed_while_out_of_service(storage: Storage, edge: Edge) -> None:
    edge.send(OPEN)
    [row] = alerts(storage)
    sensor, alert_id = edge.sensor(), int(row["id"])
    storage.service.take_out(sensor, OPERATOR, "sensor replaced")
    view = alert_view(storage.get_alert(alert_id))  # type: ignore[arg-type]
    assert view["out_of_service"] is True
    assert view["out_of_service_by"] == {
        "kind": "token",
        "name": "control room",
        "display": None,
        "role": "operator",
        "token_id": 7,
    }
    assert view["out_of_service_comment"] == "sensor replaced"
    taken = [e for e in storage.alert_journal(alert_id) if e["action"] == "out_of_service"]
    assert [(e["by_kind"], e["by_name"], e["comment"]) for e in taken] == [
        ("token", "control room", "sensor replaced")
    ]
    assert view["out_of_service_since"] is not None
    # escalated and acknowledged while out of service: journaled, not announced
    edge.send(msgspec.structs.replace(OPEN, severity="critical", value=99.0))
    storage.acknowledge_alert(alert_id, OPERATOR, "seen")
    assert events(storage) == [("alert.opened", False, alert_id)]
    storage.service.put_back(sensor, OPERATOR, None)
    assert events(storage) == [("alert.opened", False, alert_id), ("alert.opened", True, alert_id)]
    assert actions(storage, alert_id) == [
        "opened",
        "out_of_service",
        "escalated",
        "acknowledged",
        "in_service",
    ]
    payload = json.loads(storage.alert_events_after(1, 1)[0]["payload"])
    assert alert_view(payload)["out_of_service"] is False and payload["severity"] == "critical"


def test_an_alert_cleared_while_out_of_service_is_not_announced_again(
    storage: Storage, edge: Edge
) -> None:
    edge.send(OPEN)
    [row] = alerts(storage)
    storage.service.take_out(edge.sensor(), OPERATOR, None)
    edge.send(msgspec.structs.replace(OPEN, closed_at=OPEN.opened_at + 5))
    storage.service.put_back(edge.sensor(), OPERATOR, None)
    assert events(storage) == [("alert.opened", False, int(row["id"]))]
    assert storage.get_alert(int(row["id"]))["state"] == "cleared"  # type: ignore[index]


def test_a_machine_in_maintenance_or_offline_takes_its_sensors_out_of_service(
    storage: Storage, edge: Edge
) -> None:
    edge.send()
    edge.send(key="oos/m1/pressure")
    sensor, other = edge.sensor(), edge.sensor("oos/m1/pressure")
    machine = int(storage.get_sensor(sensor)["machine_id"])  # type: ignore[index]
    storage.update_machine(machine, {"status": "MAINTENANCE"}, ADMIN)
    edge.send(OPEN)
    edge.send(msgspec.structs.replace(OPEN, id=2, key="oos/m1/pressure"), key="oos/m1/pressure")
    assert alerts(storage) == []
    state = storage.service.sensor_state(other)
    assert state is not None and state["machine"]["machine_status"] == "MAINTENANCE"
    # OFFLINE keeps it out; the sensor's own record outlives the machine's
    storage.update_machine(machine, {"status": "OFFLINE"}, ADMIN)
    storage.service.take_out(sensor, OPERATOR, "own reason")
    storage.update_machine(machine, {"status": "OPERATIONAL"}, ADMIN)
    [row] = alerts(storage)
    assert (row["sensor_id"], row["edge_alert_id"]) == (other, 2)
    assert storage.service.sensor_state(sensor)["machine"] is None  # type: ignore[index]
    storage.service.put_back(sensor, OPERATOR, None)
    assert sorted(r["sensor_id"] for r in alerts(storage)) == sorted([sensor, other])
    periods = query(
        storage,
        "SELECT sensor_id, machine_id, machine_status, ended_at IS NULL FROM service_periods "
        "ORDER BY id",
    )
    assert [tuple(bool(v) if i == 3 else v for i, v in enumerate(p)) for p in periods] == [
        (None, machine, "OFFLINE", False),
        (sensor, None, None, False),
    ]


def test_acts_are_audited_and_refused_when_they_change_nothing(
    storage: Storage, edge: Edge
) -> None:
    edge.send()
    sensor = edge.sensor()
    assert storage.service.take_out(999_999, OPERATOR, None) is None
    storage.service.take_out(sensor, OPERATOR, "why")
    with pytest.raises(Conflict):
        storage.service.take_out(sensor, OPERATOR, "again")
    storage.service.put_back(sensor, ADMIN, "ok")
    with pytest.raises(Conflict):
        storage.service.put_back(sensor, ADMIN, None)
    rows = query(
        storage,
        "SELECT action, target_id, token_id, role, by_kind, by_name, detail FROM audit_log "
        "WHERE action IN ('sensor.out_of_service', 'sensor.in_service') ORDER BY id",
    )
    assert [(*r[:6], json.loads(r[6])) for r in rows] == [
        (
            "sensor.out_of_service",
            str(sensor),
            7,
            "operator",
            "token",
            "control room",
            {"comment": "why"},
        ),
        ("sensor.in_service", str(sensor), None, "admin", "user", "anna", {"comment": "ok"}),
    ]
    # the period keeps who began and who ended it, as the journal does
    periods = query(
        storage,
        "SELECT by_kind, by_name, ended_by_kind, ended_by_name, ended_by_display "
        "FROM service_periods WHERE sensor_id = ?",
        (sensor,),
    )
    assert [tuple(r) for r in periods] == [("token", "control room", "user", "anna", "Anna Berg")]

"""GET /alarm-summary against a real hub on both engines: the roll-up sensor -> machine ->
factory -> fleet (worst active severity, active, unacknowledged, shelved, out of service),
shelved alarms and those of sensors out of service out of the active counts, a machine's
sensors with their latest value, and clear 4xx."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.timeutil import now
from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.hub.conftest import HubProcess, token
from tests.hub.test_api import assert_error, get
from tests.hub.test_report_api import ingest, sensor_of

API = "/api/v1"


def _alert(alert_id: int, key: str, severity: str, opened_at: float) -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity=severity,
        threshold_value=80.0,
        value=95.0,
        opened_at=opened_at,
    )


def _admin_post(hub: HubProcess, path: str, body: dict[str, Any]) -> None:
    with hub.client("admin") as c:
        r = c.post(path, json=body)
    assert r.status_code == 200, r.text


def _alert_id(hub: HubProcess, sensor: int) -> int:
    rows = get(hub, f"{API}/alerts", sensor_id=sensor).json()["data"]
    return int(rows[0]["id"])


def test_the_roll_up_from_sensor_to_fleet(hub: HubProcess) -> None:
    t = now()
    keys = [
        "sum/machine3/temp",
        "sum/machine3/pres",
        "sum/machine1/temp",
        "sum/machine2/temp",
        "sum/machine1/pres",
    ]
    readings = [WireReading(7000 + i, k, t - 10, 90.0 + i, "C") for i, k in enumerate(keys)]
    alerts = [
        _alert(7001, keys[0], "critical", t - 60),
        _alert(7002, keys[1], "critical", t - 50),
        _alert(7003, keys[2], "warning", t - 40),
        _alert(7004, keys[4], "critical", t - 30),
    ]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=alerts))
    warning = _alert_id(hub, sensor_of(hub, keys[2]))
    critical = _alert_id(hub, sensor_of(hub, keys[4]))
    # On machine1: the warning acknowledged (still active), the critical shelved (suppressed).
    _admin_post(hub, f"{API}/alerts/{warning}/ack", {"comment": "seen"})
    _admin_post(hub, f"{API}/alerts/{critical}/shelve", {"duration_s": 3600, "comment": "known"})

    fleet = get(hub, f"{API}/alarm-summary").json()["data"]
    assert fleet["alarms"] == {
        "worst_severity": "critical",
        "active": 3,
        "unacknowledged": 2,
        "shelved": 1,
        "out_of_service": 0,
        "in_alarm": True,
    }
    by_name = {f["name"]: f for f in fleet["factories"]}
    assert by_name["acme"]["alarms"]["worst_severity"] == "critical"
    assert by_name["acme"]["alarms"]["active"] == 3
    assert by_name["globex"]["alarms"] == {
        "worst_severity": None,
        "active": 0,
        "unacknowledged": 0,
        "shelved": 0,
        "out_of_service": 0,
        "in_alarm": False,
    }
    # The fleet names the machines in alarm only: machine2 has none.
    in_alarm = {m["name"]: m["alarms"] for m in fleet["machines"]}
    assert set(in_alarm) == {"machine3", "machine1"}
    assert in_alarm["machine3"]["worst_severity"] == "critical"
    assert in_alarm["machine3"]["active"] == 2 and in_alarm["machine3"]["unacknowledged"] == 2
    # machine1: the shelved critical does not make it worse than warning.
    assert in_alarm["machine1"] == {
        "worst_severity": "warning",
        "active": 1,
        "unacknowledged": 0,
        "shelved": 1,
        "out_of_service": 0,
        "in_alarm": True,
    }

    acme = by_name["acme"]["id"]
    factory = get(hub, f"{API}/alarm-summary", factory_id=acme).json()["data"]
    machines = {m["name"]: m for m in factory["machines"]}
    assert {"machine1", "machine2", "machine3"} <= set(machines)
    assert machines["machine3"]["alarms"]["worst_severity"] == "critical"
    assert machines["machine3"]["alarms"]["active"] == 2
    assert machines["machine2"]["alarms"]["in_alarm"] is False
    assert factory["alarms"]["active"] == 3

    machine3 = machines["machine3"]["id"]
    page = get(hub, f"{API}/alarm-summary", machine_id=machine3).json()["data"]
    assert page["factory_id"] == acme and page["machine_id"] == machine3
    sensors = {s["key"]: s for s in page["sensors"]}
    assert set(sensors) == {keys[0], keys[1]}
    assert sensors[keys[0]]["value"] == 90.0 and sensors[keys[0]]["unit"] == "C"
    assert sensors[keys[1]]["value"] == 91.0
    assert sensors[keys[0]]["time"] is not None
    for s in sensors.values():
        assert s["alarms"]["worst_severity"] == "critical" and s["alarms"]["active"] == 1
    assert page["alarms"]["active"] == 2 and page["alarms"]["unacknowledged"] == 2

    # Acknowledged, then cleared: out of every count. Cleared unacknowledged: still counted.
    crit = _alert_id(hub, sensor_of(hub, keys[0]))
    _admin_post(hub, f"{API}/alerts/{crit}/ack", {"comment": "on it"})
    page = get(hub, f"{API}/alarm-summary", machine_id=machine3).json()["data"]
    assert page["alarms"]["active"] == 2 and page["alarms"]["unacknowledged"] == 1
    clears = [
        msgspec.structs.replace(_alert(7001, keys[0], "critical", t - 60), closed_at=t - 5),
        msgspec.structs.replace(_alert(7002, keys[1], "critical", t - 50), closed_at=t - 5),
    ]
    ingest(hub, Batch(gateway_id="gw-01", readings=[], alerts=clears))
    page = get(hub, f"{API}/alarm-summary", machine_id=machine3).json()["data"]
    assert page["alarms"] == {
        "worst_severity": None,
        "active": 0,
        "unacknowledged": 1,
        "shelved": 0,
        "out_of_service": 0,
        "in_alarm": False,
    }
    fleet = get(hub, f"{API}/alarm-summary").json()["data"]
    assert "machine3" in {m["name"] for m in fleet["machines"]}  # one left to acknowledge


def test_bad_input_is_a_clear_4xx(hub: HubProcess) -> None:
    path = f"{API}/alarm-summary"
    assert_error(get(hub, path, factory_id="x"), 400)
    assert_error(get(hub, path, machine_id="-1"), 400)
    assert_error(get(hub, path, factory_id=1, machine_id=1), 400)
    assert_error(get(hub, path, factory_id=999_999), 404, "not_found")
    assert_error(get(hub, path, machine_id=999_999), 404, "not_found")
    assert_error(get(hub, path, who=None), 401)
    assert_error(get(hub, path, who="gw1"), 403)


def test_a_caller_limited_to_a_factory_sees_only_its_alarms(hub: HubProcess) -> None:
    t = now()
    with hub.client("gw3") as c:  # globex: a critical of its own
        r = c.post(
            f"{API}/ingest",
            content=encode_batch(
                Batch(
                    gateway_id="gw-03",
                    readings=[WireReading(7100, "glb/press/temp", t - 10, 99.0)],
                    alerts=[_alert(7101, "glb/press/temp", "critical", t - 20)],
                )
            ),
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 200, r.text
    hub.tokens["globex"] = token(
        hub.config, "token", "add", "--role", "read", "--factory", "globex"
    )
    fleet = get(hub, f"{API}/alarm-summary", who="globex").json()["data"]
    assert [f["name"] for f in fleet["factories"]] == ["globex"]
    assert {m["factory"] for m in fleet["machines"]} == {"globex"}
    assert fleet["alarms"]["active"] == 1 and fleet["alarms"]["worst_severity"] == "critical"
    acme = next(
        f["id"]
        for f in get(hub, f"{API}/alarm-summary").json()["data"]["factories"]
        if f["name"] == "acme"
    )
    assert_error(get(hub, f"{API}/alarm-summary", who="globex", factory_id=acme), 404)
    acme_machine = get(hub, f"{API}/alarm-summary", factory_id=acme).json()["data"]["machines"][0]
    assert_error(get(hub, f"{API}/alarm-summary", who="globex", machine_id=acme_machine["id"]), 404)


def test_alarms_of_a_sensor_out_of_service_count_apart(hub: HubProcess) -> None:
    """A sensor out of service (its own period, or its machine in MAINTENANCE) has its
    active alarms counted as out_of_service only: not active, not unacknowledged, not in the
    worst severity; back in service they count as active again."""
    t = now()
    keys = ["oos/machine5/temp", "oos/machine5/pres", "oos/machine6/temp"]
    readings = [WireReading(7200 + i, k, t - 10, 90.0 + i, "C") for i, k in enumerate(keys)]
    alerts = [
        _alert(7201, keys[0], "critical", t - 60),
        _alert(7202, keys[1], "warning", t - 50),
        _alert(7203, keys[2], "high", t - 40),
    ]
    before = get(hub, f"{API}/alarm-summary").json()["data"]["alarms"]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=alerts))
    temp = sensor_of(hub, keys[0])
    _admin_post(hub, f"{API}/sensors/{temp}/out-of-service", {"comment": "recalibration"})
    acme = next(
        f["id"]
        for f in get(hub, f"{API}/alarm-summary").json()["data"]["factories"]
        if f["name"] == "acme"
    )
    factory = get(hub, f"{API}/alarm-summary", factory_id=acme).json()["data"]
    machines = {m["name"]: m for m in factory["machines"]}
    machine5, machine6 = machines["machine5"]["id"], machines["machine6"]["id"]
    # the critical of the sensor out of service does not make machine5 critical
    assert machines["machine5"]["alarms"] == {
        "worst_severity": "warning",
        "active": 1,
        "unacknowledged": 1,
        "shelved": 0,
        "out_of_service": 1,
        "in_alarm": True,
    }
    page = get(hub, f"{API}/alarm-summary", machine_id=machine5).json()["data"]
    sensors = {s["key"]: s["alarms"] for s in page["sensors"]}
    assert sensors[keys[0]] == {
        "worst_severity": None,
        "active": 0,
        "unacknowledged": 0,
        "shelved": 0,
        "out_of_service": 1,
        "in_alarm": False,
    }
    assert sensors[keys[1]]["active"] == 1 and sensors[keys[1]]["out_of_service"] == 0

    # a machine in MAINTENANCE: all its sensors' alarms count apart, even a shelved one
    high = _alert_id(hub, sensor_of(hub, keys[2]))
    _admin_post(hub, f"{API}/alerts/{high}/shelve", {"duration_s": 3600, "comment": "known"})
    with hub.client("admin") as c:
        r = c.patch(f"{API}/machines/{machine6}", json={"status": "MAINTENANCE"})
        assert r.status_code == 200, r.text
    fleet = get(hub, f"{API}/alarm-summary").json()["data"]
    assert fleet["alarms"]["active"] == before["active"] + 1
    assert fleet["alarms"]["unacknowledged"] == before["unacknowledged"] + 1
    assert fleet["alarms"]["shelved"] == before["shelved"]
    assert fleet["alarms"]["out_of_service"] == before["out_of_service"] + 2
    # the fleet names machines that ask for attention: machine6 asks for none now
    assert "machine6" not in {m["name"] for m in fleet["machines"]}
    page = get(hub, f"{API}/alarm-summary", machine_id=machine6).json()["data"]
    assert page["alarms"]["out_of_service"] == 1 and page["alarms"]["shelved"] == 0
    assert page["alarms"]["worst_severity"] is None

    # back in service: counted as active (and shelved) again
    _admin_post(hub, f"{API}/sensors/{temp}/in-service", {"comment": "done"})
    with hub.client("admin") as c:
        r = c.patch(f"{API}/machines/{machine6}", json={"status": "OPERATIONAL"})
        assert r.status_code == 200, r.text
    page = get(hub, f"{API}/alarm-summary", machine_id=machine5).json()["data"]
    assert page["alarms"]["worst_severity"] == "critical"
    assert page["alarms"]["active"] == 2 and page["alarms"]["out_of_service"] == 0
    page = get(hub, f"{API}/alarm-summary", machine_id=machine6).json()["data"]
    assert page["alarms"]["shelved"] == 1 and page["alarms"]["out_of_service"] == 0

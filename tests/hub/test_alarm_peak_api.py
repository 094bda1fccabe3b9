"""An alert's peak_value against a real hub on both engines: the most extreme reading of its
sensor while it was active (above a maximum the highest, below a minimum the lowest), moved
by readings in later batches, by a clear's own batch up to the clear and by the edge's
escalations; readings before the open or after the clear do not count. And the alert list's
machine_id and shelved filters the alarm table uses."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.timeutil import now
from shared.wire import Batch, WireAlert, WireReading
from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get
from tests.hub.test_report_api import ingest, sensor_of

API = "/api/v1"


class Seq:
    def __init__(self, start: int) -> None:
        self.n = start

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _alert(alert_id: int, key: str, breach: str, value: float, opened_at: float) -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type=breach,
        severity="high",
        threshold_value=80.0 if breach == "above_maximum" else 20.0,
        value=value,
        opened_at=opened_at,
    )


def _only_alert(hub: HubProcess, key: str) -> dict[str, Any]:
    (alert,) = get(hub, f"{API}/alerts", sensor_id=sensor_of(hub, key)).json()["data"]
    return dict(alert)


def test_the_peak_follows_readings_while_active(hub: HubProcess) -> None:
    seq, t, key = Seq(8000), now(), "peak/m1/temp"
    opened = _alert(8001, key, "above_maximum", 95.0, t - 100)
    readings = [
        WireReading(seq(), key, t - 200, 150.0),  # before the open: not the alert's
        WireReading(seq(), key, t - 90, 97.0),
        WireReading(seq(), key, t - 80, 110.0),
        WireReading(seq(), key, t - 70, 99.0),
    ]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=[opened]))
    assert _only_alert(hub, key)["peak_value"] == 110.0
    # A later batch of readings alone moves it further; a lower one does not lower it.
    ingest(
        hub,
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(seq(), key, t - 60, 120.0), WireReading(seq(), key, t - 50, 90)],
        ),
    )
    assert _only_alert(hub, key)["peak_value"] == 120.0
    # The clear's own batch: a reading before the clear counts, one after it does not.
    cleared = msgspec.structs.replace(opened, closed_at=t - 20)
    late = [WireReading(seq(), key, t - 30, 130.0), WireReading(seq(), key, t - 10, 500.0)]
    ingest(hub, Batch(gateway_id="gw-01", readings=late, alerts=[cleared]))
    alert = _only_alert(hub, key)
    assert alert["state"] == "cleared" and alert["peak_value"] == 130.0
    # Cleared: later readings leave it alone.
    ingest(hub, Batch(gateway_id="gw-01", readings=[WireReading(seq(), key, t - 5, 900.0)]))
    assert _only_alert(hub, key)["peak_value"] == 130.0


def test_below_a_minimum_the_peak_is_the_lowest_and_the_edge_escalation_counts(
    hub: HubProcess,
) -> None:
    seq, t, key = Seq(8100), now(), "peak/m1/pres"
    opened = _alert(8101, key, "below_minimum", 15.0, t - 100)
    readings = [WireReading(seq(), key, t - 90, 12.0), WireReading(seq(), key, t - 80, 14.0)]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=[opened]))
    assert _only_alert(hub, key)["peak_value"] == 12.0
    # The edge escalates with a value lower than any reading the hub has.
    worse = msgspec.structs.replace(opened, severity="critical", value=3.5)
    ingest(hub, Batch(gateway_id="gw-01", readings=[], alerts=[worse]))
    alert = _only_alert(hub, key)
    assert alert["severity"] == "critical" and alert["peak_value"] == 3.5
    ingest(hub, Batch(gateway_id="gw-01", readings=[WireReading(seq(), key, t - 70, 9.0)]))
    assert _only_alert(hub, key)["peak_value"] == 3.5


def test_alerts_by_machine_and_by_shelved(hub: HubProcess) -> None:
    t = now()
    keys = ["flt/press/temp", "flt/oven/temp"]
    alerts = [_alert(8200 + i, k, "above_maximum", 90.0, t - 60) for i, k in enumerate(keys)]
    readings = [WireReading(8200 + i, k, t - 61, 50.0) for i, k in enumerate(keys)]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=alerts))
    press = get(hub, f"{API}/sensors/{sensor_of(hub, keys[0])}").json()["data"]["machine_id"]
    oven_alert = _only_alert(hub, keys[1])["id"]
    rows = get(hub, f"{API}/alerts", machine_id=press).json()["data"]
    assert [r["sensor_id"] for r in rows] == [sensor_of(hub, keys[0])]
    with hub.client("admin") as c:
        r = c.post(f"{API}/alerts/{oven_alert}/shelve", json={"duration_s": 600})
        assert r.status_code == 200, r.text
    shelved = get(hub, f"{API}/alerts", shelved="true").json()["data"]
    assert [r["id"] for r in shelved] == [oven_alert]
    unshelved = {r["id"] for r in get(hub, f"{API}/alerts", shelved="false").json()["data"]}
    assert oven_alert not in unshelved and _only_alert(hub, keys[0])["id"] in unshelved
    assert_error(get(hub, f"{API}/alerts", shelved="maybe"), 400)
    assert_error(get(hub, f"{API}/alerts", machine_id="x"), 400)

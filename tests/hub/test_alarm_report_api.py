"""GET /alarm-report against a real hub on both engines: the envelope, CSV, who may read it,
and a clear 4xx for a bad period or an unknown factory."""

from __future__ import annotations

import csv
import io
from typing import Any

from shared.wire import Batch, WireAlert, WireReading
from tests.edge_alerts import RECENT_T0
from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get
from tests.hub.test_report_api import ingest

API = "/api/v1"
# Recent, as the alarms a running hub keeps must be (its alert watch marks old ones stale).
T0 = RECENT_T0


def alerts(n: int, start: float, spacing: float) -> list[WireAlert]:
    return [
        WireAlert(
            id=9000 + i,
            key=f"ar/m/s{i % 4}",
            rule="threshold",
            breach_type="above_maximum",
            severity="high",
            threshold_value=1.0,
            value=2.0,
            opened_at=start + spacing * i,
            closed_at=start + spacing * i + 1,
        )
        for i in range(n)
    ]


def test_report_as_json_and_csv(hub: HubProcess) -> None:
    # 12 alarms 30 s apart: one flood from the 11th (T0+300) to T0+600+30 (the 2nd + 600 s).
    readings = [WireReading(9000 + i, f"ar/m/s{i}", T0, 2.0) for i in range(4)]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=alerts(12, T0, 30.0)))
    factory = get(hub, f"{API}/factories").json()["data"]
    acme = next(f["id"] for f in factory if f["name"] == "acme")
    period = {"from": T0, "to": T0 + 3600, "factory_id": acme}
    r = get(hub, f"{API}/alarm-report", **period)
    assert r.status_code == 200, r.text
    body = r.json()
    data = body["data"]
    assert data["alarms"] == 12 and data["per_10min_peak"] == 12
    assert data["floods"]["count"] == 1 and data["floods"]["total_s"] == 330.0
    # The rate to draw: 10-minute buckets over an hour, all 12 in the first.
    assert data["rate"] == {"bucket_s": 600.0, "counts": [12, 0, 0, 0, 0, 0]}
    assert [t["key"] for t in data["top_sources"]] == ["ar/m/s0", "ar/m/s1", "ar/m/s2", "ar/m/s3"]
    r = get(hub, f"{API}/alarm-report", format="csv", **period)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = {row["metric"]: row["value"] for row in csv.DictReader(io.StringIO(r.text))}
    assert rows["alarms"] == "12" and rows["floods.total_s"] == "330.0"
    assert rows["top_sources.1.key"] == "ar/m/s0"
    assert not [m for m in rows if m.startswith("rate")]  # a series, not a figure


def test_bad_input_is_a_clear_4xx(hub: HubProcess) -> None:
    empty: dict[str, Any] = {"from": T0, "to": T0}
    assert_error(get(hub, f"{API}/alarm-report", **empty), 400)
    assert_error(get(hub, f"{API}/alarm-report", **{**empty, "from": "yesterday"}), 400)
    assert_error(get(hub, f"{API}/alarm-report", factory_id="x"), 400)
    assert_error(get(hub, f"{API}/alarm-report", factory_id=999_999), 404, "not_found")
    assert_error(get(hub, f"{API}/alarm-report", format="xml"), 400)
    assert_error(get(hub, f"{API}/alarm-report", who=None), 401)
    assert_error(get(hub, f"{API}/alarm-report", who="gw1"), 403)

"""Rolling averages, CSV export and the factory report against a real hub, on both engines."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx

from hub.api.report import filename
from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.edge_alerts import RECENT_T0
from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, get

API = "/api/v1"
# Recent: alert 902 stays active, and the hub's alert watch would mark one from 2023 stale.
T0 = RECENT_T0


def ingest(hub: HubProcess, batch: Batch) -> None:
    with hub.client("gw1") as c:
        r = c.post(
            f"{API}/ingest", content=encode_batch(batch), headers={"Content-Encoding": "gzip"}
        )
    assert r.status_code == 200, r.text


def sensor_of(hub: HubProcess, key: str) -> int:
    return int(get(hub, f"{API}/sensors", key=key).json()["data"][0]["id"])


def rolling(values: list[float], n: int) -> list[float]:
    return [
        sum(values[max(0, i - n + 1) : i + 1]) / len(values[max(0, i - n + 1) : i + 1])
        for i in range(len(values))
    ]


def rows_of(r: httpx.Response) -> list[dict[str, str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def test_rolling_average_reaches_back_before_the_range(hub: HubProcess) -> None:
    key = "roll/m/v"
    values = [float((i * 7) % 11) for i in range(40)]
    ingest(
        hub,
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(1000 + i, key, T0 + i, v) for i, v in enumerate(values)],
        ),
    )
    sid = sensor_of(hub, key)
    expected = rolling(values, 5)
    whole = get(hub, f"{API}/sensors/{sid}/readings", rolling=5).json()
    assert whole["meta"]["rolling"] == 5
    got = [r["rolling_avg"] for r in whole["data"]]
    assert all(abs(a - b) < 1e-9 for a, b in zip(got, expected, strict=True))
    # A range starting mid-history: its first average still covers the 4 readings before.
    window: dict[str, Any] = {"rolling": 5, "from": T0 + 20, "limit": 10}
    part = get(hub, f"{API}/sensors/{sid}/readings", **window)
    body = part.json()
    assert [r["value"] for r in body["data"]] == values[20:30]
    assert all(
        abs(r["rolling_avg"] - e) < 1e-9 for r, e in zip(body["data"], expected[20:30], strict=True)
    )
    assert body["meta"]["truncated"] is True
    # The plain answer has no rolling_avg.
    plain = get(hub, f"{API}/sensors/{sid}/readings", limit=3).json()["data"]
    assert "rolling_avg" not in plain[0]


def test_readings_as_csv(hub: HubProcess) -> None:
    key = "csv/m/v"
    ingest(
        hub,
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(2000 + i, key, T0 + i, i / 3) for i in range(10)],
        ),
    )
    sid = sensor_of(hub, key)
    r = get(hub, f"{API}/sensors/{sid}/readings", format="csv", limit=4, rolling=2)
    rows = rows_of(r)
    assert list(rows[0]) == ["id", "ts", "time", "value", "rolling_avg"]
    assert [float(x["value"]) for x in rows] == [i / 3 for i in range(4)]
    # Floats are written with repr: they read back bit for bit.
    assert float(rows[1]["rolling_avg"]) == (0 / 3 + 1 / 3) / 2
    assert r.headers["x-truncated"] == "true"
    assert float(r.headers["x-next-from"]) == T0 + 3
    plain = rows_of(get(hub, f"{API}/sensors/{sid}/readings", format="csv"))
    assert len(plain) == 10 and "rolling_avg" not in plain[0]
    assert_error(get(hub, f"{API}/sensors/{sid}/readings", format="xml"), 400)
    assert_error(get(hub, f"{API}/sensors/{sid}/readings", rolling="0"), 400)
    assert_error(get(hub, f"{API}/sensors/{sid}/readings", rolling="10001"), 400)


def alert(i: int, key: str, opened: float, closed: float | None) -> WireAlert:
    return WireAlert(
        id=i,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=50.0,
        value=60.0,
        opened_at=opened,
        closed_at=closed,
    )


def test_factory_report(hub: HubProcess) -> None:
    hot, calm = "rep/m/hot", "rep/m/calm"
    readings = [WireReading(3000 + i, hot, T0 + 10 * i, float(i)) for i in range(100)]
    readings += [WireReading(3100 + i, calm, T0 + 10 * i, 5.0) for i in range(50)]
    thirds = "rep/m/thirds"  # an average with a long tail of digits: 5/3
    readings += [WireReading(3200 + i, thirds, T0 + 10 * i, v) for i, v in enumerate([1, 2, 2])]
    alerts = [
        alert(900, hot, T0 + 100, T0 + 400),
        alert(901, hot, T0 + 300, T0 + 700),  # overlaps the first: counted once
        alert(902, hot, T0 + 900, None),  # still active: counts up to `to`
        alert(903, hot, T0 - 5000, T0 - 4000),  # before the range
    ]
    ingest(hub, Batch(gateway_id="gw-01", readings=readings, alerts=alerts))
    acme = next(f for f in get(hub, f"{API}/factories").json()["data"] if f["name"] == "acme")
    params: dict[str, Any] = {"from": T0, "to": T0 + 1000, "per_page": 1000}
    r = get(hub, f"{API}/factories/{acme['id']}/report", **params)
    assert r.status_code == 200, r.text
    body = r.json()
    by_key = {row["key"]: row for row in body["data"]}
    h, c = by_key[hot], by_key[calm]
    assert (h["count"], h["min"], h["max"]) == (100, 0.0, 99.0)
    assert abs(h["avg"] - 49.5) < 1e-9
    assert (h["alerts"], h["time_in_alert_s"]) == (3, 700.0)
    assert (c["count"], c["avg"], c["alerts"], c["time_in_alert_s"]) == (50, 5.0, 0, 0.0)
    assert body["meta"]["factory_id"] == acme["id"]
    assert body["meta"]["total"] == len(body["data"])
    assert body["links"]["next"] is None

    assert abs(by_key[thirds]["avg"] - 5 / 3) < 1e-12  # the JSON keeps every digit

    # The CSV, paged or whole (streamed): a file named for the factory and the period, the
    # averages to 4 significant digits, min and max as stored.
    url = f"{API}/factories/{acme['id']}/report"
    paged = get(hub, url, format="csv", **params)
    whole = get(hub, url, format="csv", **{"from": T0, "to": T0 + 1000})
    for answer in (paged, whole):
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="acme-report-{stamp(T0)}-{stamp(T0 + 1000)}.csv"'
        )
        rows = {row["key"]: row for row in rows_of(answer)}
        csv_hot = rows[hot]
        assert (csv_hot["count"], csv_hot["alerts"], float(csv_hot["time_in_alert_s"])) == (
            "100",
            "3",
            700.0,
        )
        assert (rows[thirds]["avg"], rows[thirds]["min"], rows[thirds]["max"]) == (
            "1.667",
            "1.0",
            "2.0",
        )
        assert rows[hot]["avg"] == "49.5"
    assert_error(get(hub, f"{API}/factories/987654/report"), 404)
    assert_error(get(hub, f"{API}/factories/{acme['id']}/report", to="x"), 400)


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H%MZ")


def test_report_file_names() -> None:
    t = 1_700_000_000.0
    assert filename(7, "Werk Süd / Halle 2", t, t + 86400) == (
        "Werk-Sud-Halle-2-report-2023-11-14T2213Z-2023-11-15T2213Z.csv"
    )
    # Nothing of the name fits a file name; a range from the first alert.
    assert filename(7, "工場", None, t) == "factory-7-report-start-2023-11-14T2213Z.csv"


def test_startup_probe(hub: HubProcess) -> None:
    r = httpx.get(f"{hub.url}/health/startup")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "started"
    assert r.json()["schema_version"] >= 1


def test_report_csv_cells_never_become_formulas(hub: HubProcess) -> None:
    with hub.client("admin") as c:
        f = c.post(f"{API}/factories", json={"name": "csv-safety"}).json()["data"]
        m = c.post(f"{API}/machines", json={"factory_id": f["id"], "line": "l", "name": "m"})
        s = c.post(
            f"{API}/sensors",
            json={"machine_id": m.json()["data"]["id"], "name": "=1+2", "unit": "@x"},
        )
        assert s.status_code == 201, s.text
        r = c.get(f"{API}/factories/{f['id']}/report", params={"format": "csv"})
    (row,) = rows_of(r)
    assert (row["name"], row["unit"], row["key"]) == ("'=1+2", "'@x", "l/m/=1+2")
    assert row["count"] == "0" and row["min"] == ""

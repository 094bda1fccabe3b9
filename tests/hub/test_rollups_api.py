"""``series?points=`` and tiered series/stats through the real hub, on both engines."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from hub.api.history import buckets_spanned, pick_bucket
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess

DAY = 86400.0
T0 = 1_699_920_000.0  # a whole day
KEY = "hist/m1/temp"


def get(hub: HubProcess, path: str, **params: Any) -> httpx.Response:
    with hub.client("read") as c:
        return c.get(path, params=params)


def data(r: httpx.Response) -> tuple[Any, dict[str, Any]]:
    assert r.status_code == 200, r.text
    body = r.json()
    return body["data"], body["meta"]


@pytest.fixture(scope="module")
def history_sensor(hub: HubProcess) -> tuple[int, list[tuple[float, float]]]:
    """Ten days, one reading every 997 s, sent newest batch first (each older one is late
    data for buckets already rolled up), the middle batch twice."""
    points = [
        (T0 + i * 997.0 + 0.25, float((i * 37) % 101 - 50)) for i in range(int(10 * DAY / 997))
    ]
    parts = [list(range(i, min(i + 200, len(points)))) for i in range(0, len(points), 200)]
    order = [*reversed(parts), parts[len(parts) // 2]]
    with hub.client("gw1") as c:
        for part in order:
            body = encode_batch(
                Batch(
                    gateway_id="gw-01",
                    readings=[WireReading(10_000 + i, KEY, *points[i], "C") for i in part],
                )
            )
            r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
            assert r.status_code == 200, r.text
    with hub.client("read") as c:
        sensor = c.get("/api/v1/sensors", params={"key": KEY}).json()["data"][0]["id"]
    return int(sensor), points


def test_pick_bucket_never_answers_more_than_asked() -> None:
    for span in (0.5, 59.0, 3600.0, 7 * DAY, 365 * DAY, 40 * 365 * DAY):
        for n in (1, 2, 7, 100, 500, 1000):
            width = pick_bucket(T0 + 13.7, T0 + 13.7 + span, n)
            assert buckets_spanned(T0 + 13.7, T0 + 13.7 + span, width) <= n
    # A year at 1000 points: a whole number of hours, answered by the hour tier.
    assert pick_bucket(T0, T0 + 365 * DAY, 1000) % 3600 == 0


def test_points_picks_a_bucket_and_answers_like_raw(
    hub: HubProcess, history_sensor: tuple[int, list[tuple[float, float]]]
) -> None:
    sensor, points = history_sensor
    rows, meta = data(get(hub, f"/api/v1/sensors/{sensor}/series", points=50))
    assert 0 < len(rows) <= 50 and meta["points"] == 50
    width = meta["bucket_s"]
    assert width == pick_bucket(points[0][0], points[-1][0], 50)
    assert sum(r["count"] for r in rows) == len(points)  # the re-sent batch counted once
    groups: dict[float, list[float]] = {}
    for ts, v in points:
        groups.setdefault(math.floor(ts / width) * width, []).append(v)
    assert [r["ts"] for r in rows] == sorted(groups)
    for r in rows:
        vals = groups[r["ts"]]
        assert (r["min"], r["max"], r["count"], r["first"], r["last"]) == (
            min(vals),
            max(vals),
            len(vals),
            vals[0],
            vals[-1],
        )
        assert math.isclose(r["avg"], sum(vals) / len(vals), rel_tol=1e-9, abs_tol=1e-9)


def test_bucket_and_points_agree_and_exclude_each_other(
    hub: HubProcess, history_sensor: tuple[int, list[tuple[float, float]]]
) -> None:
    sensor, _ = history_sensor
    path = f"/api/v1/sensors/{sensor}/series"
    frm, to = T0 + 3 * DAY + 1234.5, T0 + 6 * DAY - 17.0
    by_points, meta = data(get(hub, path, points=80, **{"from": frm, "to": to}))
    by_bucket, _ = data(
        get(hub, path, bucket=f"{int(meta['bucket_s'])}s", **{"from": frm, "to": to})
    )
    assert by_points == by_bucket and len(by_points) <= 80
    r = get(hub, path, points=10, bucket="1h")
    assert r.status_code == 400 and r.json()["error"]["details"][0]["param"] == "points"
    for bad in ("0", "-1", "x", "100001"):
        assert get(hub, path, points=bad).status_code == 400


def test_stats_over_unaligned_ranges_equal_raw(
    hub: HubProcess, history_sensor: tuple[int, list[tuple[float, float]]]
) -> None:
    sensor, points = history_sensor
    for frm, to in ((None, None), (T0 + 1.5, T0 + 9 * DAY + 3599.0), (T0 + 7211.0, T0 + 7300.0)):
        params = {k: v for k, v in (("from", frm), ("to", to)) if v is not None}
        got, _ = data(get(hub, f"/api/v1/sensors/{sensor}/stats", **params))
        vals = [v for ts, v in points if (frm is None or ts >= frm) and (to is None or ts < to)]
        assert got["count"] == len(vals)
        if vals:
            assert (got["min"], got["max"]) == (min(vals), max(vals))
            assert math.isclose(got["avg"], sum(vals) / len(vals), rel_tol=1e-9, abs_tol=1e-9)


def test_points_where_nothing_is_stored(
    hub: HubProcess, history_sensor: tuple[int, list[tuple[float, float]]]
) -> None:
    sensor, _ = history_sensor
    path = f"/api/v1/sensors/{sensor}/series"
    rows, meta = data(get(hub, path, points=10, **{"from": T0 - 5 * DAY, "to": T0 - DAY}))
    assert rows == [] and meta["bucket_s"] == pick_bucket(T0 - 5 * DAY, T0 - DAY, 10)
    assert get(hub, "/api/v1/sensors/999999/series", points=10).status_code == 404

"""Every read that can answer many rows is charged to the read budget with what it may
answer, and CSV exports answer the whole range (streamed), on both engines."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hub.api import export, readcost
from hub.ratelimit import PageRefused, ReadBudget, ReadCharge
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import ENGINES, HubProcess, engine_url, start_hub, token
from tests.hub.test_api import assert_error

API = "/api/v1"
T0 = 1_700_000_000.0


def ingest(hub: HubProcess, readings: list[WireReading]) -> None:
    with hub.client("gw1") as c:
        for i in range(0, len(readings), 4000):
            batch = Batch(gateway_id="gw-01", readings=readings[i : i + 4000])
            r = c.post(
                f"{API}/ingest",
                content=encode_batch(batch),
                headers={"Content-Encoding": "gzip"},
            )
            assert r.status_code == 200, r.text


def sensor_id(hub: HubProcess, key: str) -> int:
    with hub.client("read") as c:
        return int(c.get(f"{API}/sensors", params={"key": key}).json()["data"][0]["id"])


def csv_rows(r: httpx.Response) -> list[dict[str, str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


# -- costs from parameters -------------------------------------------------------------------


def test_a_series_without_to_is_charged_up_to_now() -> None:
    at = 1_800_000_000.0
    hour = {"from": str(at - 3600), "bucket": "60s"}
    assert readcost.series(hour, at=lambda: at) == 61
    # An open start can reach the first reading: the limit is all that bounds it.
    assert readcost.series({"bucket": "60s", "limit": "500"}, at=lambda: at) == 500
    later = {"from": str(at + 100), "bucket": "60s"}
    assert readcost.series(later, at=lambda: at) == 1


def test_each_large_read_has_a_cost() -> None:
    assert readcost.sensor_alerts({"limit": "100000"}) == 200_000
    assert readcost.sensor_alerts({}) == 200
    assert readcost.anomalies({"limit": "5000"}) == 5000
    assert readcost.page({"per_page": "1000"}) == 1000
    assert readcost.readings({"limit": "10", "rolling": "5"}) == 14
    assert readcost.readings({"format": "csv"}) == 0  # an export pays page by page


def test_a_stream_waits_for_its_budget_between_pages() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    budget = ReadBudget(100.0, 100, max_concurrent=1, heavy_rows=1000, clock=lambda: clock[0])
    charge = ReadCharge(budget, 7, sleep=sleep)
    with charge.page(100, wait=True) as page:
        page.read = 60  # a short page gives back what it did not read
    with charge.page(40, wait=False) as page:
        page.read = 40
    with pytest.raises(PageRefused) as refused, charge.page(50, wait=False):
        pass
    assert refused.value.reason == "budget" and slept == []
    with charge.page(50, wait=True) as page:
        page.read = 50
    assert slept and sum(slept) == pytest.approx(0.5)


def test_an_export_that_fails_mid_way_says_so_in_the_file() -> None:
    def pages() -> Iterator[bytes]:
        yield b"2,1.0\r\n"
        raise OSError("the database went away")

    chunks = list(export._stream(b"id,value\r\n1,0.5\r\n", pages(), "readings"))
    assert chunks == [b"id,value\r\n1,0.5\r\n", b"2,1.0\r\n", export.FAILED]


# -- a hub with a small read budget ----------------------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def small_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return engine_url(request, tmp_path_factory.mktemp("small-db"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, small_database: str) -> Iterator[HubProcess]:
    directory = tmp_path_factory.mktemp("small")
    server = start_hub(
        directory,
        database=small_database,
        heavy_read_rows=100,
        read_budget_rows_per_s=0.001,  # no refill within a test: the burst is the budget
        read_budget_burst_rows=1_500,
    )
    config = server.config
    server.tokens = {
        "gw1": token(config, "gateway", "add", "gw-01", "--factory", "small"),
        "read": token(config, "token", "add", "--role", "read"),
    }
    ingest(server, [WireReading(1 + i, "cost/m/v", T0 + i, float(i % 7)) for i in range(600)])
    yield server
    assert server.stop() == 0


def fresh_reader(hub: HubProcess, role: str = "read") -> httpx.Client:
    name = f"{role}-{len(hub.tokens)}"
    hub.tokens[name] = token(hub.config, "token", "add", "--role", role)
    return hub.client(name)


@pytest.mark.parametrize(
    ("path", "params", "then"),
    [
        ("/sensors/{id}/alerts", {"limit": 700}, {"limit": 100}),
        (
            "/sensors/{id}/anomalies",
            {"limit": 1400, "stored": "true"},
            {"limit": 200, "stored": "true"},
        ),
        ("/alerts", {"per_page": 1000}, {"per_page": 600}),
        ("/sensors", {"per_page": 1000}, {"per_page": 600}),
    ],
)
def test_large_reads_draw_on_the_budget(
    small: HubProcess, path: str, params: dict[str, Any], then: dict[str, Any]
) -> None:
    url = API + path.format(id=sensor_id(small, "cost/m/v"))
    with fresh_reader(small) as c:
        assert c.get(url, params=params).status_code == 200
        r = c.get(url, params=then)
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1


def test_the_audit_log_draws_on_the_budget(small: HubProcess) -> None:
    with fresh_reader(small, "admin") as c:
        assert c.get(f"{API}/audit", params={"per_page": 1000}).status_code == 200
        assert_error(c.get(f"{API}/audit", params={"per_page": 600}), 429, "rate_limited")


def test_the_last_hour_of_a_series_costs_its_buckets(small: HubProcess) -> None:
    url = f"{API}/sensors/{sensor_id(small, 'cost/m/v')}/series"
    hour: dict[str, Any] = {"from": time.time() - 3600, "bucket": "60s"}
    with fresh_reader(small) as c:
        # ~61 buckets each, under the heavy-read mark: never refused, however often polled.
        for _ in range(5):
            assert c.get(url, params=hour).status_code == 200


def test_an_export_is_charged_the_rows_it_read(small: HubProcess) -> None:
    url = f"{API}/sensors/{sensor_id(small, 'cost/m/v')}/readings"
    with fresh_reader(small) as c:
        assert len(csv_rows(c.get(url, params={"format": "csv"}))) == 600
        # 600 of the 1,500 rows are spent: a read of 800 still fits...
        assert c.get(url, params={"limit": 800}).status_code == 200
        # ...and then a new export cannot start.
        assert_error(c.get(url, params={"format": "csv"}), 429, "rate_limited")


# -- exports answer the whole range ------------------------------------------------------------


N = 2 * readcost.EXPORT_PAGE + 123


@pytest.fixture(scope="module")
def long_sensor(hub: HubProcess) -> int:
    ingest(hub, [WireReading(1 + i, "exp/m/v", T0 + i, float(i % 13)) for i in range(N)])
    return sensor_id(hub, "exp/m/v")


def test_a_csv_export_streams_the_whole_range(hub: HubProcess, long_sensor: int) -> None:
    url = f"{API}/sensors/{long_sensor}/readings"
    with hub.client("read") as c:
        r = c.get(url, params={"format": "csv"})
        rows = csv_rows(r)
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.headers["x-truncated"] == "false"
        assert [float(row["ts"]) for row in rows] == [T0 + i for i in range(N)]
        # A range: [from, to), across page boundaries.
        part: dict[str, Any] = {"format": "csv", "from": T0 + 10, "to": T0 + 10 + N - 20}
        assert [float(row["ts"]) for row in csv_rows(c.get(url, params=part))] == [
            T0 + 10 + i for i in range(N - 20)
        ]
        head = c.head(url, params={"format": "csv"})
        assert head.status_code == 200 and head.content == b""


def test_a_rolling_export_carries_its_window_across_pages(
    hub: HubProcess, long_sensor: int
) -> None:
    window, start = 7, 50
    values = [float(i % 13) for i in range(N)]
    with hub.client("read") as c:
        params: dict[str, Any] = {"format": "csv", "rolling": window, "from": T0 + start}
        rows = csv_rows(c.get(f"{API}/sensors/{long_sensor}/readings", params=params))
    assert len(rows) == N - start
    for i, row in zip(range(start, N), rows, strict=True):
        expected = sum(values[i - window + 1 : i + 1]) / window
        assert float(row["rolling_avg"]) == pytest.approx(expected, abs=1e-9), i


def test_a_report_export_lists_every_sensor(hub: HubProcess) -> None:
    keys = [f"many/m/s{i:03d}" for i in range(150)]
    ingest(hub, [WireReading(50_000 + i, k, T0 + i, 1.0) for i, k in enumerate(keys)])
    with hub.client("read") as c:
        factory = next(f for f in c.get(f"{API}/factories").json()["data"] if f["name"] == "acme")
        url = f"{API}/factories/{factory['id']}/report"
        rows = csv_rows(c.get(url, params={"format": "csv"}))
        assert set(keys) <= {row["key"] for row in rows}
        # Asked for a page, a page is what comes back.
        paged = csv_rows(c.get(url, params={"format": "csv", "per_page": 10}))
        assert len(paged) == 10

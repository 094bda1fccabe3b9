"""Retention per tier, on both engines: old raw readings and rollups go, in bounded steps,
while the tiers that keep the history still answer the same numbers for it."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from hub.retention import DAY_S, RetentionJob, RetentionSettings
from hub.storage import GatewayReport, Storage
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import engine_of, query, start_hub, token

NOW = 1_700_006_400.0  # a whole day (UTC midnight)
REPORT = GatewayReport(0, 0, 0, "test")


def seed(storage: Storage, days_back: list[float], per_day: int = 30) -> tuple[int, int]:
    """Readings on each of ``days_back`` (days before NOW), spread over that day's first hours."""
    gateway = storage.add_gateway("gw-r", "acme", "hash-r")
    factory = storage.get_gateway("gw-r")["factory_id"]  # type: ignore[index]
    readings, seq = [], 0
    for d in days_back:
        for i in range(per_day):
            readings.append(WireReading(seq, "l/m/r", NOW - d * DAY_S + i * 97.0, float(seq), None))
            seq += 1
    storage.store_batch(gateway, factory, readings, REPORT)
    return storage.list_sensors(key="l/m/r")[0]["id"], seq


def settings(**kw: Any) -> RetentionSettings:
    return RetentionSettings.model_validate({"pause_s": 0, **kw})


def test_each_tier_keeps_its_own_depth(storage: Storage) -> None:
    sensor, total = seed(storage, [400.0, 100.0, 40.0, 3.0, 0.5])
    before = storage.stats(sensor, None, None)
    job = RetentionJob(
        storage, settings(raw_days=30, minute_days=60, hour_days=365), clock=lambda: NOW
    )
    removed = job.run_once()
    assert removed is not None
    raw = query(storage, "SELECT min(ts), count(*) FROM readings WHERE sensor_id = ?", (sensor,))
    assert raw[0][1] == 60 and raw[0][0] >= NOW - 30 * DAY_S
    minute = query(storage, "SELECT min(bucket) FROM rollup_1m WHERE sensor_id = ?", (sensor,))
    assert minute[0][0] >= NOW - 60 * DAY_S
    hour = query(
        storage, "SELECT min(bucket), sum(count) FROM rollup_1h WHERE sensor_id = ?", (sensor,)
    )
    assert hour[0][0] >= NOW - 365 * DAY_S and hour[0][1] == total - 30
    # All-time stats come from the hour tier: everything younger than a year, whatever raw
    # retention removed.
    after = storage.stats(sensor, None, None)
    assert after[3] == total - 30 and after[1] == before[1]
    # A chart of the 100-day-old day, raw readings long gone, still answers from the tiers.
    day = NOW - 100 * DAY_S
    assert sum(b[4] for b in storage.buckets(sensor, day, day + DAY_S, 3600.0, 100)) == 30
    # Measured and recorded for /metrics, with each tier's next expiry.
    status = {row["tier"]: row for row in storage.tier_status()}
    assert status["raw"]["rows"] == 60
    assert status["raw"]["next_expiry"] == pytest.approx(status["raw"]["oldest"] + 30 * DAY_S)
    assert status["1h"]["next_expiry"] == pytest.approx(status["1h"]["oldest"] + 365 * DAY_S)


def test_zero_keeps_forever(storage: Storage) -> None:
    sensor, total = seed(storage, [3000.0, 1.0])
    RetentionJob(
        storage, settings(raw_days=0, minute_days=0, hour_days=0), clock=lambda: NOW
    ).run_once()
    assert query(storage, "SELECT count(*) FROM readings WHERE sensor_id = ?", (sensor,)) == [
        (total,)
    ]
    status = {row["tier"]: row for row in storage.tier_status()}
    assert status["raw"]["next_expiry"] is None and status["raw"]["rows"] == total


def test_rollups_go_in_bounded_steps(storage: Storage) -> None:
    sensor, _ = seed(storage, [10.0], per_day=25)
    cutoff = NOW
    steps = []
    while n := storage.expire("1m", cutoff, 7):
        steps.append(n)
    assert steps == [7, 7, 7, 4]
    if engine_of(storage) == "sqlite":
        raw_steps = []
        while n := storage.expire("raw", cutoff, 10):
            raw_steps.append(n)
        assert raw_steps == [10, 10, 5]
    else:
        # PostgreSQL drops the day's partition in one step.
        assert storage.expire("raw", cutoff, 10) >= 1 and storage.expire("raw", cutoff, 10) == 0
    assert query(storage, "SELECT count(*) FROM readings WHERE sensor_id = ?", (sensor,)) == [(0,)]


def test_a_bucket_goes_only_when_all_of_it_is_past(storage: Storage) -> None:
    seed(storage, [1.0], per_day=1)  # one reading at NOW - 1 day, an hour start
    assert storage.expire("1h", NOW - DAY_S + 1, 100) == 0  # its hour is not over yet
    assert storage.expire("1h", NOW - DAY_S + 3600, 100) == 1


def test_one_process_runs_a_round(database_url: str) -> None:
    from hub.storage import open_storage

    a, b = open_storage(database_url), open_storage(database_url)
    a.migrate()
    try:
        with a.exclusive_job("retention") as first, b.exclusive_job("retention") as second:
            assert first
            # PostgreSQL: the other process skips; SQLite has one hub process.
            assert second is (engine_of(a) == "sqlite")
        with b.exclusive_job("retention") as again:
            assert again
    finally:
        a.close()
        b.close()


class Inline:
    """A TOML inline table for write_config."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_metrics_show_storage_per_tier(tmp_path: Any, database_url: str) -> None:
    hub = start_hub(
        tmp_path,
        database=database_url,
        retention=Inline("{ raw_days = 30, minute_days = 400, hour_days = 0, interval_s = 0.2 }"),
    )
    try:
        gw = token(hub.config, "gateway", "add", "gw-m", "--factory", "acme")
        old = (time.time() - 10 * DAY_S) // 60 * 60  # 50 readings in one minute
        body = encode_batch(
            Batch(
                gateway_id="gw-m",
                readings=[WireReading(i, "l/m/x", old + i, 1.0, None) for i in range(1, 51)],
            )
        )
        with httpx.Client(base_url=hub.url, timeout=30) as c:
            r = c.post(
                "/api/v1/ingest",
                content=body,
                headers={"Authorization": f"Bearer {gw}", "Content-Encoding": "gzip"},
            )
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 30
            rows = None
            while time.monotonic() < deadline:
                text = c.get("/metrics").text
                found = re.search(r'^edge_hub_storage_rows\{tier="raw"\} (\S+)$', text, re.M)
                if found and float(found.group(1)) == 50:
                    rows = text
                    break
                time.sleep(0.1)
        assert rows is not None, "the retention job never measured the 50 readings"
        expiry = re.search(
            r'^edge_hub_retention_next_expiry_timestamp_seconds\{tier="raw"\} (\S+)$', rows, re.M
        )
        assert expiry and float(expiry.group(1)) == pytest.approx(old + 30 * DAY_S, abs=1)
        assert re.search(r'^edge_hub_storage_rows\{tier="1m"\} 1\.0$', rows, re.M)
        assert 'edge_hub_retention_next_expiry_timestamp_seconds{tier="1h"}' not in rows
        assert re.search(r'^edge_hub_storage_bytes\{tier="raw"\} [1-9]', rows, re.M)
    finally:
        assert hub.stop() == 0


@pytest.mark.parametrize(
    "days",
    [
        {"raw_days": 90, "minute_days": 30},
        {"raw_days": 0, "minute_days": 730},
        {"minute_days": 730, "hour_days": 365},
        {"minute_days": 0, "hour_days": 3650},
    ],
)
def test_a_coarser_tier_must_keep_longer(days: dict[str, float]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="coarser tiers keep longer"):
        RetentionSettings.model_validate(days)

"""Row: sync drain of a pre-filled agent backlog into a real hub, against the hub database's
own raw insert rate.

The backlog is written straight into the agent's buffer file (as ingest would have left it
after an outage), then the real agent process is started against the real hub and timed until
the hub's database holds every reading. The baseline is the ceiling the hub's storage allows
on this machine: the same rows inserted with executemany into an empty copy of the hub's
schema (same table, same indexes, same 5,000-row transactions), with no HTTP, JSON or Python
per-row work.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from agent.buffer import Buffer, Reading
from agent.config import HubConfig
from bench.common import Row, count_rows, wait_count
from devtools.stack import Agent, Broker, Hub
from hub.storage.sqlite.pool import SETTINGS as SQLITE_SETTINGS

BATCH = 5000


def _prefill(path: Path, n: int, sensors: int) -> None:
    rng = random.Random(11)
    keys = [f"line{i % 4}/m{i // 4 % 25}/s{i}" for i in range(sensors)]
    buf = Buffer(path, max_bytes=50_000_000_000)
    try:
        t0 = 1_732_000_000.0
        for start in range(0, n, 50_000):
            rows = [
                Reading(keys[i % sensors], t0 + i, rng.gauss(50, 5), "C", t0 + i)
                for i in range(start, min(n, start + 50_000))
            ]
            buf.append(rows)
    finally:
        buf.close()


def _raw_insert_rate(hub_db: Path, workdir: Path, n: int, sensors: int) -> float:
    src = sqlite3.connect(hub_db)
    ddl = [
        sql
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'readings' AND sql IS NOT NULL"
        )
    ]
    src.close()
    db = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    # The hub's own connection settings, so the ceiling is a fair one.
    for setting in SQLITE_SETTINGS:
        db.execute(f"PRAGMA {setting}")
    for sql in ddl:
        db.execute(sql)
    # Same ids as the hub writes: gateway_id * 2^40 + seq.
    rows = [
        ((1 << 40) + i + 1, i % sensors + 1, 1_732_000_000.0 + i, 50.0 + (i % 97) / 10, 1, i + 1)
        for i in range(n)
    ]
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR IGNORE INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
            "VALUES (?,?,?,?,?,?)",
            rows[i : i + BATCH],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


def run(workdir: Path, n: int, sensors: int = 1000) -> list[Row]:
    (workdir / "drain").mkdir()
    wd = workdir / "drain"
    broker = Broker(wd).start()
    hub = Hub(wd)
    token = hub.add_gateway("gw-drain", "bench")
    hub.start()
    agent = Agent(wd, gateway_id="gw-drain", mqtt_port=broker.port, hub_url=hub.url, token=token)
    try:
        t = time.perf_counter()
        _prefill(agent.buffer, n, sensors)
        prefill_s = time.perf_counter() - t
        start = time.monotonic()
        agent.start(wait_subscribed=False)
        first = wait_count(hub.db, "readings", 1, timeout=60)
        end = wait_count(hub.db, "readings", n, timeout=1800)
        assert count_rows(hub.db, "readings") == n
    finally:
        agent.stop()
        hub.stop()
        broker.stop()
    drain_rate = n / (end - start)
    raw = _raw_insert_rate(hub.db, wd, n, sensors)
    return [
        Row(
            "sync drain of a backlog into the hub",
            drain_rate,
            "readings/s",
            "raw executemany into the hub schema",
            raw,
            ">= 100,000/s",
            note=(
                f"{n:,} readings, {sensors} sensors, the agent's default gzip batches"
                f" ({HubConfig().batch_max_readings:,} readings; raw insert in {BATCH:,}-row"
                " chunks); timed from "
                f"agent start (first data after {first - start:.2f}s; "
                f"prefill took {prefill_s:.0f}s)"
            ),
        )
    ]

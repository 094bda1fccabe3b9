"""Row: a backlog drained into a hub on PostgreSQL, against raw binary COPY into the same table.

The backlog (10M readings by default, 1,000 sensors at 1 Hz each, as devtools.prefill writes
an outage's buffer) drains through the real agent into the real hub, which stores into a
durable PostgreSQL server of its own (bench.pgserver: fsync and synchronous_commit on). The
time runs from agent start to the agent's buffer holding no backlog, and then the hub's
database must hold exactly the backlog.

Baseline, measured first on the same server: as many rows of the same shape by binary COPY
in the agent's batch size (40,000 rows, one transaction each) from one psycopg connection
straight into the hub's own ``readings`` table (its day partitions and indexes), then
TRUNCATE, so the drain starts on an empty table as the COPY did. That is the ceiling
PostgreSQL itself allows here: no HTTP, JSON, rollups or per-batch Python besides the rows.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent.config import HubConfig
from bench.backlog import _buffer_state
from bench.common import Row
from bench.fleet import _pg_count
from bench.pgserver import PgBenchServer, copy_readings
from devtools.prefill import prefill, value_of
from devtools.stack import Agent, Broker, Hub

SENSORS = 1000


def _row(gateway: int, i: int, t0: float) -> tuple[int, int, float, float, int, int]:
    """The i-th reading of the backlog's shape, as a readings row of ``gateway``."""
    return ((gateway << 40) + i + 1, i % SENSORS + 1, t0 + i * 0.001, value_of(i), gateway, i + 1)


def _raw_copy_rate(url: str, n: int, batch: int, t0: float) -> float:
    """Rows/s of the COPY; the rows are removed again (TRUNCATE), so the drain that follows
    starts on an empty table as this did."""
    import psycopg

    from hub.storage.postgres import PostgresStorage

    storage = PostgresStorage(url)
    try:
        storage.before_readings([t0, t0 + n * 0.001])  # the hub's own day partitions
    finally:
        storage.close()
    gateway = (1 << 20) + 7
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for lo in range(0, n, batch):
            copy_readings(conn, (_row(gateway, i, t0) for i in range(lo, min(n, lo + batch))))
        rate = n / (time.perf_counter() - start)
        conn.execute("TRUNCATE readings")
    return rate


def run(workdir: Path, n: int) -> list[Row]:
    from tests.pg import bin_dir

    found = bin_dir()
    if found is None:
        print("[bench] pg drain: no PostgreSQL server binaries; row left out")
        return []
    wd = workdir / "pg-drain"
    wd.mkdir()
    server = PgBenchServer(found).start()
    broker = Broker(wd).start()
    url = server.url()
    hub = Hub(wd, database=url)
    try:
        token = hub.add_gateway("gw-pg-drain", "bench")  # creates the schema
        batch = HubConfig().batch_max_readings
        t0 = time.time() - 86400
        raw = _raw_copy_rate(url, n, batch, t0)
        hub.start()
        agent = Agent(
            wd, gateway_id="gw-pg-drain", mqtt_port=broker.port, hub_url=hub.url, token=token
        )
        prefill_s = prefill(agent.buffer, n, SENSORS, t0)
        start = time.monotonic()
        agent.start(wait_subscribed=False)
        deadline = start + 3600
        try:
            while True:
                left, _ = _buffer_state(agent.buffer)
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"backlog not drained in an hour ({left:,} left)")
                time.sleep(0.1)
            drain_s = time.monotonic() - start
        finally:
            agent.stop()
        stored = _pg_count(url)
        assert stored == n, f"the hub holds {stored:,} readings of a {n:,} backlog"
    finally:
        hub.stop()
        broker.stop()
        server.stop()
    return [
        Row(
            "backlog drain into a hub on PostgreSQL",
            n / drain_s,
            "readings/s",
            "raw binary COPY into the hub's readings table",
            raw,
            ">= 0.7x the raw COPY",
            note=(
                f"{n:,} readings, {SENSORS} sensors at 1 Hz, through the real agent and hub "
                f"(workers = 1, rollups on) into a durable PostgreSQL; COPY in {batch:,}-row "
                f"transactions from one connection; prefill took {prefill_s:.0f}s"
            ),
        )
    ]

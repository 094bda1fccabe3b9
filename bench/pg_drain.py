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

import os
import time
from pathlib import Path

from agent.config import HubConfig
from bench.backlog import _buffer_state
from bench.common import CpuMeter, Row
from bench.fleet import _pg_count
from bench.pgserver import PgBenchServer, copy_readings
from devtools.prefill import prefill, value_of
from devtools.stack import Agent, Broker, Hub

SENSORS = 1000
Cpu = dict[str, float]  # CPU seconds by part: agent, hub, postgresql, client


def _row(gateway: int, i: int, t0: float) -> tuple[int, int, float, float, int, int]:
    """The i-th reading of the backlog's shape, as a readings row of ``gateway``."""
    return ((gateway << 40) + i + 1, i % SENSORS + 1, t0 + i * 0.001, value_of(i), gateway, i + 1)


def _raw_copy_rate(server: PgBenchServer, n: int, batch: int, t0: float) -> tuple[float, Cpu]:
    """Rows/s of the COPY and the CPU it took; the rows are removed again (TRUNCATE), so the
    drain that follows starts on an empty table as this did."""
    import psycopg

    from hub.storage.postgres import PostgresStorage

    url = server.url()
    storage = PostgresStorage(url)
    try:
        storage.before_readings([t0, t0 + n * 0.001])  # the hub's own day partitions
    finally:
        storage.close()
    gateway = (1 << 20) + 7
    with psycopg.connect(url) as conn:
        pg, client = CpuMeter(server.postmaster_pid()).start(), CpuMeter(os.getpid()).start()
        start = time.perf_counter()
        for lo in range(0, n, batch):
            copy_readings(conn, (_row(gateway, i, t0) for i in range(lo, min(n, lo + batch))))
        rate = n / (time.perf_counter() - start)
        pg.sample()
        client.sample()
        conn.execute("TRUNCATE readings")
    return rate, {"postgresql": pg.seconds, "client": client.seconds}


def _per_million(cpu: Cpu, n: int) -> Cpu:
    return {part: round(seconds * 1e6 / n, 2) for part, seconds in cpu.items()}


def _cpu_note(drain: Cpu, raw: Cpu, rate_raw: float) -> str:
    """Where the CPU goes, per million readings, and the rate it allows on this machine's
    cores even if every part ran in parallel with every other (the drain's ceiling here)."""
    cores = os.cpu_count() or 1
    ceiling = cores * 1e6 / sum(drain.values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in drain.items())
    raw_parts = ", ".join(f"{k} {v:.1f}" for k, v in raw.items())
    return (
        f"; CPU s per 1M readings: {parts} (sum {sum(drain.values()):.1f}); raw COPY: "
        f"{raw_parts}; that CPU on {cores} cores allows at most {ceiling / 1000:.0f}k/s even "
        f"fully overlapped ({ceiling / rate_raw:.2f}x the raw COPY)"
    )


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
        raw, raw_cpu = _raw_copy_rate(server, n, batch, t0)
        hub.start()
        agent = Agent(
            wd, gateway_id="gw-pg-drain", mqtt_port=broker.port, hub_url=hub.url, token=token
        )
        prefill_s = prefill(agent.buffer, n, SENSORS, t0)
        assert hub.proc.popen is not None
        hub_cpu = CpuMeter(hub.proc.popen.pid).start()
        pg_cpu = CpuMeter(server.postmaster_pid()).start()
        start = time.monotonic()
        agent.start(wait_subscribed=False)
        assert agent.proc.popen is not None
        meters = {
            "agent": CpuMeter(agent.proc.popen.pid).start(),
            "hub": hub_cpu,
            "postgresql": pg_cpu,
        }
        deadline = start + 3600
        try:
            while True:
                for meter in meters.values():
                    meter.sample()
                left, _ = _buffer_state(agent.buffer)
                if left == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"backlog not drained in an hour ({left:,} left)")
                time.sleep(0.1)
            drain_s = time.monotonic() - start
            for meter in meters.values():
                meter.sample()
        finally:
            agent.stop()
        drain_cpu = _per_million({k: m.seconds for k, m in meters.items()}, n)
        raw_cpu = _per_million(raw_cpu, n)
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
                + _cpu_note(drain_cpu, raw_cpu, raw)
            ),
            extra={"cpu_s_per_million": drain_cpu, "raw_cpu_s_per_million": raw_cpu},
        )
    ]

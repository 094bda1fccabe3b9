"""Rows: what a PostgreSQL hub pays per batch and per anomaly scan as the days it keeps add up.

Raw readings are partitioned by day, so a plant that keeps three years of them has 1,095
partitions. A query of ``readings`` that cannot tell from its own parameters which days it
needs reads (or at least locks) every one of them, and that cost grows with every day kept,
unseen in a bench whose database holds a week. Here the same work runs in a database with the
(empty) days of three years and in one with the usual week, in turns, two rounds each:

- a 100-reading ingest request (``bench.request_cost.measure``): PostgreSQL's CPU for it,
  the one-statement batch, and the step-by-step one in the note;
- an anomaly scan's window of a sensor, its newest 500 readings (``last_readings``).

Usage: python -m bench.days_kept [--requests N] (or ``just bench --only days``).
"""

from __future__ import annotations

import argparse
import time

import psycopg

from bench.common import CpuMeter, Row
from bench.pgserver import PgBenchServer
from bench.request_cost import measure
from hub.storage import GatewayReport
from hub.storage.engines import open_storage
from hub.storage.postgres.partitions import Partitions, day_of
from shared.wire import WireReading

YEARS_DAYS = 3 * 365
SCAN_READINGS = 500
SCANS = 300


def _database(server: PgBenchServer, name: str, past_days: int) -> str:
    """A fresh hub database ``name`` with a partition for each of the ``past_days`` days
    before today (besides the week the hub makes itself)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = server.url(name)
    storage = open_storage(url)
    try:
        storage.migrate()
    finally:
        storage.close()
    with psycopg.connect(url, autocommit=True) as conn:
        today = day_of(time.time())
        Partitions().ensure(conn, range(today - past_days, today))
    return url


def _scan_ms(server: PgBenchServer, url: str) -> float:
    """PostgreSQL's CPU (ms) for one anomaly scan's read: a sensor's newest 500 readings, of
    the 2,000 it got in the last hour."""
    storage = open_storage(url)
    try:
        gateway = storage.add_gateway("gw-scan", "bench", "scan" * 16)
        factory = int(storage.get_gateway("gw-scan")["factory_id"])  # type: ignore[index]
        t0 = time.time() - 3600
        batch = [WireReading(s, "scan/m/t", t0 + s, float(s % 50), None) for s in range(2000)]
        storage.store_batch(gateway, factory, batch, GatewayReport(0, 0, 0, "bench"))
        sensor = next(s["id"] for s in storage.list_sensors() if s["key"] == "scan/m/t")
        for _ in range(20):  # past psycopg's prepare threshold and the first custom plans
            storage.last_readings(sensor, SCAN_READINGS)
        meter = CpuMeter(server.postmaster_pid()).start()
        for _ in range(SCANS):
            assert len(storage.last_readings(sensor, SCAN_READINGS)) == SCAN_READINGS
        meter.sample()
        return meter.seconds * 1000 / SCANS
    finally:
        storage.close()


def run(requests: int = 1000, days: int = YEARS_DAYS) -> list[Row]:
    from tests.pg import bin_dir

    found = bin_dir()
    if found is None:
        print("[bench] days kept: no PostgreSQL server binaries; rows left out")
        return []
    server = PgBenchServer(found).start()
    sides = {"week": 0, "years": days}
    spent: dict[str, dict[str, float]] = {
        s: {"server": 0.0, "steps": 0.0, "scan": 0.0} for s in sides
    }
    try:
        for turn in range(2):
            for side, past in sides.items():
                url = _database(server, f"{side}_{turn}", past)
                cost = measure(url, requests, server.postmaster_pid)
                spent[side]["server"] += cost["server"] / 2
                spent[side]["steps"] += cost["server_steps"] / 2
                spent[side]["scan"] += _scan_ms(server, url) / 2
    finally:
        server.stop()
    week, years = spent["week"], spent["years"]
    return [
        Row(
            f"PostgreSQL CPU per 100-reading request, {days:,} days kept",
            years["server"],
            "ms",
            "the same requests with a week of days",
            week["server"],
            "<= 1.2x",
            note=(
                f"{requests:,} requests a side, two rounds in turns; the step-by-step batch "
                f"(sensors with an active alarm): {years['steps']:.2f} ms against "
                f"{week['steps']:.2f} ms"
            ),
            extra={"week": week, "years": years},
        ),
        Row(
            f"PostgreSQL CPU per anomaly-scan read, {days:,} days kept",
            years["scan"],
            "ms",
            "the same read with a week of days",
            week["scan"],
            "(reported)",
            note=(
                f"a sensor's newest {SCAN_READINGS} readings, {SCANS} reads a side, two rounds; "
                "what grows is the prepared plan's lock of every day and the server's "
                "background work over three relations a day"
            ),
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.days_kept", description=__doc__)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    for row in run(args.requests):
        print(f"{row.name}: {row.value:.2f} {row.unit} / {row.baseline:.2f} = {row.ratio:.2f}x")
        print(f"  {row.note}")


if __name__ == "__main__":
    main()

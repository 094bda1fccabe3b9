"""Rows: the alarm report over a year of alarms, over HTTP against the real hub on SQLite and
on PostgreSQL.

Load: ``n`` alarms (100,000 by default: 274 a day, past ISA-18.2's "maximum manageable" of
300 a day only on busy days) over one year on 200 sensors, as the edge sends them (opened and
cleared, with ``Storage.store_batch``, the path of ``POST /ingest``), in batches of 1,000;
every tenth one acknowledged by an operator through the storage's own transition (journal,
change log). Severities and durations vary. Loaded on SQLite, then copied to PostgreSQL with
copy-data (``hub.storage.copy``): storing edge alerts one batch at a time runs at about a
hundred alerts a second on PostgreSQL, which would make the load, not the report, the bench.

Value: ``GET /alarm-report`` for the year, median of ``rounds`` after a warm-up, read token,
keep-alive. Baseline: the report's first read alone (the year's alarm rows, fetched
in-process on the same database): what reading the rows costs without the report's work.

PostgreSQL: a throwaway server (tests.pg.PgServer: fsync off; durable settings would slow
the load, not the reads).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.common import Row
from bench.history import _hub, _median_ms, _raw_sql
from hub.storage import GatewayReport, Storage, open_storage
from hub.storage.alert_rows import Actor, AlertFilter
from shared.timeutil import to_rfc3339
from shared.wire import WireAlert, WireReading

YEAR_S = 365 * 86400.0
T_START = 1_700_000_000.0
SENSORS = 200
BATCH = 1_000
REPORT = GatewayReport(0, 0, 0, "bench")
GOAL_MS = 1000.0
SEVERITIES = ("medium", "medium", "medium", "high", "high", "critical")


def _alerts(n: int) -> list[WireAlert]:
    rng = random.Random(7)
    step = YEAR_S / n
    alerts = []
    for i in range(n):
        opened = T_START + i * step + rng.uniform(0, step / 2)
        alerts.append(
            WireAlert(
                id=i + 1,
                key=f"line{i % 4}/m{(i * 7) % SENSORS // 4}/s{(i * 7) % SENSORS}",
                rule="threshold",
                breach_type="above_maximum",
                severity=SEVERITIES[i % len(SEVERITIES)],
                threshold_value=80.0,
                value=80.0 + rng.uniform(0, 20),
                opened_at=opened,
                closed_at=opened + rng.expovariate(1 / 600),
            )
        )
    return alerts


def load(storage: Storage, n: int) -> float:
    """The year's alarms into ``storage``; returns the seconds it took."""
    started = time.perf_counter()
    storage.migrate()
    gateway = storage.add_gateway("bench-gw", "bench-plant", "bench-token-hash")
    row = storage.get_gateway("bench-gw")
    assert row is not None
    factory = int(row["factory_id"])
    alerts = _alerts(n)
    for first in range(0, n, BATCH):
        part = alerts[first : first + BATCH]
        # One reading per batch, as a gateway's batch carries readings with its alerts.
        reading = WireReading(first + 1, part[0].key, part[0].opened_at, 90.0, None)
        storage.store_batch(gateway, factory, [reading], REPORT, part)
    operator = Actor(None, "operator")
    page, _ = storage.list_alerts(AlertFilter(), 0, n)
    for alert in page[::10]:
        storage.acknowledge_alert(int(alert["id"]), operator, "checked")
    return time.perf_counter() - started


def measure(engine: str, workdir: Path, storage: Storage, url: str, n: int, rounds: int) -> Row:
    """The report's row on the database ``url`` that ``storage`` has open, loaded."""
    start, end = T_START, T_START + YEAR_S
    raw_ms, raw_rows = _median_ms(
        lambda: _raw_sql(storage)(
            "SELECT opened_at, sensor_id, gateway_id, severity, acknowledged_at FROM alerts "
            "WHERE opened_at >= ? AND opened_at < ?",
            [start, end],
        ),
        rounds=5,
    )
    assert len(raw_rows) == n, len(raw_rows)
    with _hub(workdir / f"alarms-{engine}", url) as hub, hub.client() as c:
        params = {"from": to_rfc3339(start), "to": to_rfc3339(end)}

        def report() -> dict[str, object]:
            answer = c.get("/api/v1/alarm-report", params=params, timeout=120)
            answer.raise_for_status()
            body: dict[str, object] = answer.json()["data"]
            return body

        ms, body = _median_ms(report, rounds, warmup=1)
    assert body["alarms"] == n, body["alarms"]
    return Row(
        f"alarm report, a year of alarms ({engine})",
        ms,
        "ms",
        "the year's alarm rows read in-process",
        raw_ms,
        f"< {GOAL_MS:.0f} ms",
        f"GET /alarm-report over {n:,} alarms (every tenth acknowledged) on {SENSORS} "
        f"sensors, median of {rounds}",
        {"alarms": n, "met": ms < GOAL_MS},
    )


def run(workdir: Path, n: int = 100_000, rounds: int = 5) -> list[Row]:
    sq = workdir / "alarms-sqlite"
    sq.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{sq / 'hub.db'}"
    from hub.storage.copy import copy_data
    from tests.pg import PgServer

    source = open_storage(url)
    try:
        load_s = load(source, n)
        rows = [measure("sqlite", workdir, source, url, n, rounds)]
        server = PgServer().start()
        try:
            pg_url = server.create_database()
            target = open_storage(pg_url)
            try:
                target.migrate()
                copy_data(source, target)
                rows.append(measure("postgresql", workdir, target, pg_url, n, rounds))
            finally:
                target.close()
        finally:
            server.stop()
    finally:
        source.close()
    for row in rows:
        row.note += f"; loading them took {load_s:.0f} s"
    return rows

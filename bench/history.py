"""Rows: history at any depth. One sensor with a year of readings (10M by default), queried
over HTTP against the real hub on SQLite and on PostgreSQL; and the ingest rate with rollups
against the rate without them, in the same run.

Load: the year goes in through the storage's own batch path (``Storage.store_batch``,
what ``POST /ingest`` calls: the same insert and the same rollup fold), in 40,000-reading
batches (the agent's default), into a fresh database per engine.

Ingest: the first ``compare`` readings of the same year, as gzip'd 40,000-reading sync
batches, are posted to two more hubs on fresh databases, one with ``rollups = false`` (the
setting exists for this baseline only), in turns, alternating which goes first; each
rate is one batch over the median time of its POSTs, so both see the same machine load.

Queries: each is asked ``rounds`` times over HTTP (keep-alive, a read token) after a warm-up
and the median is the row's value. Its baseline is the query the hub answered before the
rollups (the same aggregate over the raw readings), run in-process on the same database a
few times, median: what depth cost before. Every answer's numbers are checked against that
raw aggregate.

PostgreSQL: a throwaway server (tests.pg.PgServer: initdb in a temp dir, fsync off; durable
settings would slow the load, not the reads).
"""

from __future__ import annotations

import functools
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row
from devtools.stack import Hub
from hub.api.history import pick_bucket
from hub.storage import GatewayReport, Storage, open_storage
from shared.wire import Batch, WireReading, encode_batch

YEAR_S = 365 * 86400.0
BATCH = 40_000
KEY = "line1/press/temp"
REPORT = GatewayReport(0, 0, 0, "bench")
GOAL_MS = 20.0


def _values(n: int, start: int, count: int) -> list[float]:
    rng = random.Random(start)
    return [
        round(50 + 10 * math.sin(i * 2 * math.pi / 86400 * 3.15) + rng.gauss(0, 1), 3)
        for i in range(start, start + count)
    ]


def _batches(n: int, t_start: float) -> Iterator[list[WireReading]]:
    step = YEAR_S / n
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        values = _values(n, first, count)
        yield [
            WireReading(first + i + 1, KEY, t_start + (first + i) * step, values[i], "C")
            for i in range(count)
        ]


def _register(storage: Storage) -> tuple[int, int]:
    storage.migrate()
    gateway = storage.add_gateway("bench-gw", "bench-plant", "bench-token-hash")
    row = storage.get_gateway("bench-gw")
    assert row is not None
    return gateway, int(row["factory_id"])


def _median_ms(fn: Callable[[], Any], rounds: int, warmup: int = 2) -> tuple[float, Any]:
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), result


def _raw_sql(storage: Storage) -> Callable[[str, list[Any]], list[Any]]:
    """Run SQL (``?`` placeholders) on the storage's own reader connection."""

    def run(sql: str, params: list[Any]) -> list[Any]:
        with storage._reader() as conn:  # type: ignore[attr-defined]
            return list(conn.execute(sql, params).fetchall())

    return run


@contextmanager
def _hub(workdir: Path, database: str, rollups: bool = True) -> Iterator[Hub]:
    workdir.mkdir(parents=True, exist_ok=True)
    # Keep every tier (the year must stay whole) and measure the tiers once at start.
    hub = Hub(workdir, retention="{ raw_days = 0, minute_days = 0, hour_days = 0, interval_s = 0 }")
    hub.config.write_text(
        hub.config.read_text().replace(
            f'database = "sqlite:///{hub.db}"', f'database = "{database}"'
        )
        + f'log_level = "warning"\nrollups = {"true" if rollups else "false"}\n'
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def _wait_measured(client: httpx.Client, timeout: float = 600.0) -> float:
    """Wait for the hub's start-up measurement of the tiers (a full count of each): it would
    compete with the timed queries. Returns how long it took to appear."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if "edge_hub_storage_measured_timestamp_seconds " in client.get("/metrics").text:
            return time.monotonic() - t
        time.sleep(0.2)
    raise TimeoutError("the hub never measured its tiers")


def _check(name: str, got: float, want: float) -> None:
    if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
        raise AssertionError(f"{name}: the hub answered {got}, the raw readings say {want}")


def queries(
    engine: str, hub: Hub, storage: Storage, sensor: int, t_end: float, rounds: int
) -> list[Row]:
    raw = _raw_sql(storage)
    floor = "CAST(ts / ? AS INTEGER) * ?" if engine == "sqlite" else "floor(ts / ?) * ?"
    base = f"/api/v1/sensors/{sensor}"
    t_year = t_end - YEAR_S
    m30, d7, h1 = t_end - 30 * 86400 + 17.5, t_end - 7 * 86400 + 3.25, t_end - 3600.0
    rows: list[Row] = []
    with hub.client() as c:
        measured_s = _wait_measured(c)

        def get(path: str, **params: Any) -> Any:
            r = c.get(base + path, params=params)
            r.raise_for_status()
            return r.json()["data"]

        cases: list[tuple[str, Callable[[], Any], str, list[Any]]] = [
            (
                "1-year chart (points=1000)",
                lambda: get("/series", points=1000, **{"from": t_year, "to": t_end}),
                f"SELECT {floor} AS b, min(value), max(value), avg(value), count(*) "
                "FROM readings WHERE sensor_id = ? AND ts >= ? AND ts < ? GROUP BY b ORDER BY b",
                [None, None, sensor, t_year, t_end],
            ),
            (
                "all-time stats",
                lambda: get("/stats"),
                "SELECT min(value), max(value), avg(value), count(*) FROM readings "
                "WHERE sensor_id = ?",
                [sensor],
            ),
            (
                "7-day stats",
                lambda: get("/stats", **{"from": d7, "to": t_end}),
                "SELECT min(value), max(value), avg(value), count(*) FROM readings "
                "WHERE sensor_id = ? AND ts >= ? AND ts < ?",
                [sensor, d7, t_end],
            ),
            (
                "30-day chart (bucket=1h)",
                lambda: get("/series", bucket="1h", **{"from": m30, "to": t_end}),
                f"SELECT {floor} AS b, min(value), max(value), avg(value), count(*) "
                "FROM readings WHERE sensor_id = ? AND ts >= ? AND ts < ? GROUP BY b ORDER BY b",
                [3600.0, 3600.0, sensor, m30, t_end],
            ),
            (
                "last hour, raw readings",
                lambda: get("/readings", limit=5000, **{"from": h1, "to": t_end}),
                "SELECT id, ts, value FROM readings WHERE sensor_id = ? AND ts >= ? AND ts < ? "
                "ORDER BY ts, id LIMIT 5000",
                [sensor, h1, t_end],
            ),
            (
                "latest",
                lambda: get("/latest"),
                "SELECT id, ts, value FROM readings WHERE sensor_id = ? "
                "ORDER BY ts DESC, id DESC LIMIT 1",
                [sensor],
            ),
        ]
        for name, ask, sql, params in cases:
            ms, answer = _median_ms(ask, rounds)
            if params[0] is None:  # the bucket the hub picks for points=1000
                width = pick_bucket(t_year, t_end, 1000)
                params = [width, width, *params[2:]]
            raw_ms, want = _median_ms(functools.partial(raw, sql, params), 3, warmup=1)
            if "chart" in name:
                assert [b["ts"] for b in answer] == [float(w[0]) for w in want], name
                for b, w in zip(answer, want, strict=True):
                    assert (b["min"], b["max"], b["count"]) == (w[1], w[2], w[4]), name
                    _check(name, b["avg"], float(w[3]))
            elif "stats" in name:
                lo, hi, avg, count = want[0]
                assert (answer["min"], answer["max"], answer["count"]) == (lo, hi, count), name
                _check(name, answer["avg"], float(avg))
            elif name == "latest":
                assert answer["id"] == want[0][0], name
            else:
                assert [r["id"] for r in answer] == [w[0] for w in want], name
            rows.append(
                Row(
                    f"history {engine}: {name}",
                    ms,
                    "ms",
                    "the same numbers from the raw readings (SQL, in-process)",
                    raw_ms,
                    f"< {GOAL_MS:.0f} ms",
                    f"median of {rounds} HTTP requests; {'met' if ms < GOAL_MS else 'NOT met'}",
                    {"median_ms": round(ms, 2), "raw_median_ms": round(raw_ms, 2)},
                )
            )
    rows[0].extra["tiers_measured_after_s"] = round(measured_s, 1)
    return rows


def http_ingest(
    workdir: Path, engine: str, on_db: str, off_db: str, n: int, t_start: float, compare: int
) -> tuple[float, float]:
    """Readings/s of POST /ingest into a hub with rollups and one with ``rollups = false``."""
    bodies = []
    for batch in _batches(n, t_start):
        bodies.append(encode_batch(Batch(gateway_id="bench-gw", readings=batch)))
        if len(bodies) * BATCH >= compare:
            break
    took: dict[bool, list[float]] = {True: [], False: []}
    with (
        _hub(workdir / f"ingest-{engine}-on", on_db) as on,
        _hub(workdir / f"ingest-{engine}-off", off_db, rollups=False) as off,
    ):
        clients = {}
        for rolled, hub in ((True, on), (False, off)):
            token = hub.add_gateway("bench-gw", "bench-plant")
            clients[rolled] = httpx.Client(
                base_url=hub.url,
                headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
                timeout=120,
            )
        try:
            for i, body in enumerate(bodies):
                for rolled in (True, False) if i % 2 == 0 else (False, True):
                    t = time.perf_counter()
                    r = clients[rolled].post("/api/v1/ingest", content=body)
                    took[rolled].append(time.perf_counter() - t)
                    r.raise_for_status()
                    assert r.json()["data"]["accepted"] == BATCH, r.text
        finally:
            for client in clients.values():
                client.close()
    # Medians of the per-batch times: a burst of load from elsewhere on the machine moves
    # one request's time, not the figure.
    return BATCH / statistics.median(took[True]), BATCH / statistics.median(took[False])


def run_engine(
    engine: str, workdir: Path, databases: list[str], n: int, compare: int, rounds: int
) -> list[Row]:
    """``databases``: three fresh ones (the year; ingest with and without rollups)."""
    t_end = math.floor(time.time() / 3600) * 3600 - 1800.5  # the last reading half an hour ago
    t_start = t_end - YEAR_S
    main = open_storage(databases[0])
    try:
        started = time.perf_counter()
        gateway, factory = _register(main)
        for batch in _batches(n, t_start):
            main.store_batch(gateway, factory, batch, REPORT)
        load_s = time.perf_counter() - started
        if engine == "postgresql":
            # What autovacuum does within a minute of a load this size: planner statistics.
            with main._reader() as conn:  # type: ignore[attr-defined]
                conn.execute("ANALYZE")
        sensor = int(main.list_sensors(key=KEY)[0]["id"])
        on, off = http_ingest(workdir, engine, databases[1], databases[2], n, t_start, compare)
        rows = [
            Row(
                f"history {engine}: ingest with rollups",
                on,
                "readings/s",
                "the same batches into a hub with rollups = false",
                off,
                ">= 0.90x",
                f"POST /ingest, {compare:,} readings in {BATCH:,}-reading gzip batches, "
                f"alternating between the two hubs; loading the {n:,}-reading year through "
                f"Storage.store_batch took {load_s:.0f} s ({n / load_s:,.0f}/s, rollups on)",
                {"load_s": round(load_s, 1), "readings": n, "met": on / off >= 0.9},
            )
        ]
        with _hub(workdir / f"hub-{engine}", databases[0]) as hub:
            rows += queries(engine, hub, main, sensor, t_end + 1e-3, rounds)
    finally:
        main.close()
    return rows


def run(
    workdir: Path, n: int = 10_000_000, compare: int = 2_000_000, rounds: int = 30
) -> list[Row]:
    compare = min(compare, n)
    rows: list[Row] = []
    sq = workdir / "history-sqlite"
    sq.mkdir(parents=True, exist_ok=True)
    urls = [f"sqlite:///{sq / name}.db" for name in ("year", "on", "off")]
    rows += run_engine("sqlite", sq, urls, n, compare, rounds)
    from tests.pg import PgServer

    server = PgServer().start()
    try:
        pg = workdir / "history-postgres"
        pg.mkdir(parents=True, exist_ok=True)
        urls = [server.create_database() for _ in range(3)]
        rows += run_engine("postgresql", pg, urls, n, compare, rounds)
    finally:
        server.stop()
    return rows

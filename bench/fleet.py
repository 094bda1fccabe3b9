"""Rows: a fleet of 1,000 simulated gateways (edge-load, Rust) posting 100-reading batches to
the real hub, with an operator query loop against it at the same time.

Per engine setup, two fleet runs of the same length:

- flat out: every gateway posts its next batch as soon as the last is answered (1,000
  requests in flight), which gives the hub's capacity, against the engine's own rate for
  the same 100-row transactions with no HTTP, JSON or Python per-row work (SQLite:
  executemany; PostgreSQL: binary COPY), written after the fleet into the hub's own
  readings table under the fleet's own gateways and sensors (seqs beyond theirs): the
  pages the hub wrote to, as full as the fleet left them. The same raw rows under gateway
  ids no gateway has (fresh key ranges, which cost SQLite half as much: the baseline until
  2026-12-07) are in the row's note;
- paced: the fleet offers a steady rate (the goal's 120,000 readings/s, or 60% of flat out
  when that is less: past capacity a latency only says how long the queue has grown).
  Against it: ingest p99 (from each batch's slot to its answer) against one gateway posting
  alone to the idle hub, and operator query p99 (series and stats of random sensors, 20/s)
  against the same queries on the idle hub afterwards.

The flat-out row also says what one request costs in CPU (the hub's processes, and the
PostgreSQL server's) and so how many cores the goal's rate would take at that cost; on
PostgreSQL, besides the one-connection baseline, the same raw COPY from as many connections
at once as the hub's processes hold after the flat-out run (the fleet's fair share of the
server), and from 8 connections, the most this machine's PostgreSQL takes in 100-row
transactions with nothing else running.

Hub RSS per worker: the peak of each hub process over both runs, against the hub at rest.
Zero lost or doubled is checked by counting (``_tally``): the database must hold every reading
edge-load saw acknowledged, and none beyond those and the few whose last attempt went
unanswered.

The PostgreSQL (workers = 2) rows run on a server of their own when the hub has a
PostgreSQL engine and accepts ``workers = 2`` with it; see ``_postgres_target``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import CpuMeter, Row, count_rows, edge_load
from bench.pgserver import PgBenchServer, copy_readings
from devtools.stack import Hub, wait_for
from hub.storage.sqlite.pool import SETTINGS as SQLITE_SETTINGS

GATEWAYS = 1000
BATCH = 100
# Sensors per gateway: 5,000 for the fleet, under the hub's default max_sensors_per_factory.
SENSORS = 5
QUERY_RATE = 20.0  # operator queries/s: a handful of people with dashboards open
GOAL_RATE = 120_000.0  # readings/s, the PostgreSQL goal
# Connections of the raw ceiling: the most raw 100-row COPY took on 2 cores (1, 2, 4, 8, 16, 32
# tried on 2026-12-02: 72k, 111k, 147k, 153k, 120k, 130k/s).
CEILING_CONNECTIONS = 8
# Below capacity, the paced run's rate leaves headroom: flat out is measured once on a shared
# machine, and past capacity a latency only says how long the queue has grown.
PACED_SHARE = 0.6
# Each run of a target starts its gateways' seqs in a range of its own, so no run's readings
# are another's duplicates (a run sends far fewer than 2^30 readings per gateway).
SEQ_FLAT_OUT, SEQ_PACED, SEQ_ALONE, SEQ_WARM = 1, 1 << 30, 2 << 30, 3 << 30
# The raw baselines' rows under the fleet's own gateways, past every seq the fleet sent; the
# run from as many connections as the hub held, past those.
SEQ_RAW, SEQ_RAW_HELD = 4 << 30, 5 << 30
# Warm-up rounds with several hub processes: a gateway's connection lands on a given process
# in none of 5 with a chance of 1 in 32 (two processes).
WARM_ROUNDS = 5
# Gateway ids no hub gateway has: the raw rows in fresh key ranges.
FRESH_GATEWAY, CEILING_GATEWAY = 1 << 20, 1 << 21

# A gateway's id and its sensors' ids: whose key ranges a raw batch writes into.
KeyRanges = list[tuple[int, list[int]]]
RawRow = tuple[int, int, float, float, int, int]


@dataclass
class Target:
    """One engine setup under test."""

    label: str  # "SQLite, 1 worker"
    database: str
    workers: int
    count: Callable[[], int]  # readings stored
    # The engine's rate for raw 100-row transactions of n readings into these key ranges.
    raw_rate: Callable[[KeyRanges, int], float]
    own_ranges: Callable[[], KeyRanges]  # the fleet's gateways and their sensors
    cleanup: Callable[[], None] = field(default=lambda: None)
    # The database server's main process, when it is one of its own (its CPU is measured).
    server_pid: Callable[[], int] | None = None
    # Raw transactions from CEILING_CONNECTIONS connections at once: the machine's ceiling.
    ceiling: Callable[[int], float] | None = None
    # How many connections the hub's processes hold to the database server now, and the raw
    # rate from that many at once (n readings, the fleet's key ranges).
    held_connections: Callable[[], int] | None = None
    raw_rate_from: Callable[[KeyRanges, int, int], float] | None = None


@dataclass
class QueryLoop:
    """GET series / stats of random sensors at a fixed rate, in a thread; latencies in ms."""

    url: str
    token: str
    sensor_ids: list[int]
    rate: float = QUERY_RATE
    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> QueryLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        rng = random.Random(5)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as c:
            start, i = time.monotonic(), 0
            while not self._stop.is_set():
                # Paced from the schedule, not from the last answer.
                due = start + i / self.rate
                i += 1
                if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                    break
                sid = rng.choice(self.sensor_ids)
                now = time.time()
                params: dict[str, float | str]
                if i % 2:
                    path = f"/api/v1/sensors/{sid}/series"
                    params = {"from": now - 600, "to": now, "bucket": "60s"}
                else:
                    path = f"/api/v1/sensors/{sid}/stats"
                    params = {"from": now - 600, "to": now}
                t = time.perf_counter()
                r = c.get(path, params=params)
                # What the operator waits: from asking to the answer.
                ms = (time.perf_counter() - t) * 1000
                if r.is_success:
                    self.latencies.append(ms)
                else:
                    self.failures[r.status_code] = self.failures.get(r.status_code, 0) + 1


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _edge_load(hub: Hub, tokens: Path, seconds: float, *extra: str) -> dict[str, Any]:
    return edge_load(hub.url, tokens, seconds, *extra, batch=BATCH, sensors=SENSORS)


def _sensor_ids(hub: Hub) -> list[int]:
    with hub.client() as c:
        body = c.get("/api/v1/sensors", params={"per_page": 1000}).raise_for_status().json()
    return [int(s["id"]) for s in body["data"]]


def fresh_ranges(first_gateway: int) -> KeyRanges:
    """GATEWAYS gateway ids from ``first_gateway`` on, no hub gateway's, with made-up sensors."""
    return [
        (g, [g * SENSORS + k + 1 for k in range(SENSORS)])
        for g in range(first_gateway, first_gateway + GATEWAYS)
    ]


def _own_ranges(gateways: list[tuple[int, str]], sensors: list[tuple[int, str]]) -> KeyRanges:
    """The fleet's gateways and each one's sensors (edge-load keys them ``<gateway>/...``)."""
    by_gateway: dict[str, list[int]] = {}
    for sid, key in sensors:
        by_gateway.setdefault(key.split("/", 1)[0], []).append(sid)
    return [(gid, sorted(by_gateway[name])) for gid, name in gateways if name in by_gateway]


def _raw_batches(ranges: KeyRanges, n: int, seq_start: int | None = None) -> list[list[RawRow]]:
    """About ``n`` readings in 100-row batches, interleaved like the fleet's: every
    gateway's next batch in turn, each reading on the next of its gateway's sensors; seqs
    after ``seq_start``."""
    if seq_start is None:
        # Under the fleet's own gateways, past every seq they sent; fresh gateways from 1.
        seq_start = SEQ_RAW if ranges[0][0] < FRESH_GATEWAY else 0
    t0 = time.time()
    rows = [
        (
            (gid << 40) + seq_start + s + 1,
            sids[s % len(sids)],
            t0 + s * 0.001,
            50.0 + (s % 97) / 10,
            gid,
            seq_start + s + 1,
        )
        for s in range(0, n // len(ranges))
        for gid, sids in ranges
    ]
    rows.sort(key=lambda r: ((r[5] - seq_start - 1) // BATCH, r[4]))
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def _sqlite_ranges(db: Path) -> KeyRanges:
    con = sqlite3.connect(db)
    try:
        return _own_ranges(
            con.execute("SELECT id, name FROM gateways").fetchall(),
            con.execute("SELECT id, key FROM sensors").fetchall(),
        )
    finally:
        con.close()


def _sqlite_raw_rate(db: Path, ranges: KeyRanges, n: int) -> float:
    """100-row transactions into the hub's own readings table (the hub stopped), with the
    hub's own settings."""
    batches = _raw_batches(ranges, n)
    con = sqlite3.connect(db, isolation_level=None)
    try:
        for setting in SQLITE_SETTINGS:
            con.execute(f"PRAGMA {setting}")  # the hub's own settings
        start = time.perf_counter()
        for batch in batches:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "INSERT OR IGNORE INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
                "VALUES (?,?,?,?,?,?)",
                batch,
            )
            con.execute("COMMIT")
        return sum(map(len, batches)) / (time.perf_counter() - start)
    finally:
        con.close()


def _sqlite_target(wd: Path, workers: int) -> tuple[Target, Hub]:
    hub = Hub(wd)
    # One writer either way (SQLite's); with two processes one decodes and checks while the
    # other writes.
    hub.config.write_text(hub.config.read_text() + f"workers = {workers}\n")
    return (
        Target(
            label=f"SQLite, {workers} worker{'s' if workers > 1 else ''}",
            database=f"sqlite:///{hub.db}",
            workers=workers,
            count=lambda: count_rows(hub.db, "readings"),
            raw_rate=lambda ranges, n: _sqlite_raw_rate(hub.db, ranges, n),
            own_ranges=lambda: _sqlite_ranges(hub.db),
        ),
        hub,
    )


def _pg_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def _pg_ranges(url: str) -> KeyRanges:
    import psycopg

    with psycopg.connect(url) as conn:
        return _own_ranges(
            conn.execute("SELECT id, name FROM gateways").fetchall(),
            conn.execute("SELECT id, key FROM sensors").fetchall(),
        )


def _pg_raw_rate(
    url: str, ranges: KeyRanges, n: int, connections: int = 1, seq_start: int | None = None
) -> float:
    """Binary COPY of 100-row transactions into the hub's own readings table, after the
    fleet is counted; from ``connections`` connections at once, each with gateways of its
    own."""
    import psycopg

    batches = _raw_batches(ranges, n, seq_start)
    # Batches go round-robin to the connections; a gateway's rows stay on one connection.
    shares = [[b for b in batches if b[0][4] % connections == c] for c in range(connections)]

    def copy_all(share: list[list[RawRow]]) -> None:
        with psycopg.connect(url) as conn:
            for batch in share:
                copy_readings(conn, batch)

    threads = [threading.Thread(target=copy_all, args=(share,)) for share in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(map(len, batches)) / (time.perf_counter() - start)


def _pg_client_connections(url: str) -> int:
    """Client connections to the server other than this query's own: the hub's pools."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row is not None else 0


def _postgres_target(wd: Path) -> tuple[Target, Hub] | None:
    """The PostgreSQL, workers = 2 setup (a durable server of its own, the hub pointed at it),
    or None, said on stdout, when this machine or checkout cannot have it: no PostgreSQL server
    binaries, no PostgreSQL engine in hub.storage, or a postgresql:// database with
    workers = 2 that hub.toml does not accept."""
    from tests.pg import bin_dir

    found = bin_dir()
    if found is None:
        print("[bench] fleet: no PostgreSQL server binaries; PostgreSQL rows left out")
        return None
    try:
        from hub.config import HubSettings

        if importlib.util.find_spec("hub.storage.postgres") is None:
            raise ImportError("no hub.storage.postgres")
        HubSettings.model_validate({"database": "postgresql://u@127.0.0.1:5432/x", "workers": 2})
    except Exception as exc:  # any failure means: this hub has no such setup yet
        print(f"[bench] fleet: the hub cannot serve PostgreSQL, workers=2 ({exc}); rows left out")
        return None
    server = PgBenchServer(found)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        print(f"[bench] fleet: PostgreSQL did not start ({exc.stderr}); rows left out")
        return None
    url = server.url()
    hub = Hub(wd, database=url)
    hub.config.write_text(hub.config.read_text() + "workers = 2\n")
    return (
        Target(
            label="PostgreSQL, 2 workers",
            database=url,
            workers=2,
            count=lambda: _pg_count(url),
            raw_rate=lambda ranges, n: _pg_raw_rate(url, ranges, n),
            own_ranges=lambda: _pg_ranges(url),
            cleanup=server.stop,
            server_pid=server.postmaster_pid,
            ceiling=lambda n: _pg_raw_rate(
                url, fresh_ranges(CEILING_GATEWAY), n, CEILING_CONNECTIONS
            ),
            held_connections=lambda: _pg_client_connections(url),
            raw_rate_from=lambda ranges, n, k: _pg_raw_rate(url, ranges, n, k, SEQ_RAW_HELD),
        ),
        hub,
    )


def _hub_rss(hub: Hub) -> Callable[[], list[int]]:
    """RSS of each hub process (the serving process and any worker processes)."""
    assert hub.proc.popen is not None
    root = psutil.Process(hub.proc.popen.pid)

    def sample() -> list[int]:
        with contextlib.suppress(psutil.Error):
            return [p.memory_info().rss for p in (root, *root.children(recursive=True))]
        return []

    return sample


@contextlib.contextmanager
def _rss_peaks(sample: Callable[[], list[int]]) -> Iterator[list[int]]:
    peak: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.1):
            now = sample()
            if len(now) > len(peak):
                peak.extend([0] * (len(now) - len(peak)))
            for i, v in enumerate(now):
                peak[i] = max(peak[i], v)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield peak
    finally:
        stop.set()
        t.join(5)


def _tally(reports: list[dict[str, Any]], stored: int) -> dict[str, int]:
    """Lost and doubled readings, by counting. Each run's seqs are its own, so every reading a
    2xx answer covered (``readings_acked``: accepted now, or a duplicate of an attempt whose
    answer timed out) must be stored, and nothing beyond those and the ones whose last attempt
    went unanswered (``readings_unconfirmed``) may be."""
    acked = sum(r["readings_acked"] for r in reports)
    unconfirmed = sum(r["readings_unconfirmed"] for r in reports)
    return {
        "acked": acked,
        "resent_after_timeout": sum(r["duplicates"] for r in reports),
        "lost": max(0, acked - stored),
        "doubled": max(0, stored - acked - unconfirmed),
    }


def _errors(report: dict[str, Any]) -> str:
    errors = {**report["non_2xx"], **report["transport_errors"]}
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"


def _run_target(
    target: Target, hub: Hub, wd: Path, seconds: float, gateways: int, raw_n: int
) -> list[Row]:
    ids = [f"gw-{i:04d}" for i in range(gateways)]
    tokens = wd / "tokens.txt"
    t = time.perf_counter()
    # `gateway add ID1 ID2 ...` prints one `ID TOKEN` line each: edge-load's tokens file.
    tokens.write_text(hub.cli("gateway", "add", *ids, "--factory", "bench") + "\n")
    register_s = time.perf_counter() - t
    read_token = hub.read_token
    hub.start()
    try:
        rss = _hub_rss(hub)
        idle_rss = max(rss() or [0])
        # One batch from every gateway (one slot each in 1 s): every sensor exists for the
        # queries, and the hub's first-use costs (connections, partitions) are paid. Each
        # round's connections land on any of the hub's processes, whose token and sensor
        # caches each learn a gateway on its first batch there: with several processes, a
        # few rounds leave few such first batches to fall inside the measured runs.
        warm_accepted = 0
        for round_ in range(1 if target.workers == 1 else WARM_ROUNDS):
            seq = SEQ_WARM + round_ * BATCH
            warm = _edge_load(
                hub, tokens, 1, "--rate", str(gateways * BATCH), "--seq-start", str(seq)
            )
            warm_accepted += warm["accepted"]
        # Baseline: one gateway alone on the idle hub, under its token's rate limit.
        alone = _edge_load(
            hub, tokens, 3, "--gateways", "1", "--rate", "3000", "--seq-start", str(SEQ_ALONE)
        )
        sensors = _sensor_ids(hub)
        stored_before = target.count()
        with _rss_peaks(rss) as peaks:
            # A: every gateway as fast as the hub answers it: the hub's capacity.
            meters = _cpu_meters(hub, target)
            flat = _edge_load(hub, tokens, seconds, "--seq-start", str(SEQ_FLAT_OUT))
            for meter in meters.values():
                meter.sample()
            # The pools keep what they opened flat out (idle connections live 10 minutes).
            held = target.held_connections() if target.held_connections is not None else None
            # B: a steady offered load below capacity, the operator queries alongside.
            offered = min(GOAL_RATE, PACED_SHARE * flat["readings_per_s"])
            loop = QueryLoop(hub.url, read_token, sensors).start()
            try:
                paced = _edge_load(
                    hub, tokens, seconds, "--rate", f"{offered:.0f}", "--seq-start", str(SEQ_PACED)
                )
            finally:
                loop.stop()
        stored = target.count() - stored_before
        # Baseline: the same query loop against the idle hub, same data.
        idle = QueryLoop(hub.url, read_token, sensors).start()
        wait_for("idle queries", lambda: len(idle.latencies) >= 100, timeout=60, every=0.2)
        idle.stop()
    finally:
        hub.stop()
    own = target.own_ranges()
    raw = target.raw_rate(own, raw_n)
    fresh = target.raw_rate(fresh_ranges(FRESH_GATEWAY), raw_n)
    same = (
        target.raw_rate_from(own, raw_n, held)
        if target.raw_rate_from is not None and held
        else None
    )
    ceiling = target.ceiling(raw_n) if target.ceiling is not None else None
    cpu_ms = {k: round(m.seconds * 1000 / max(1, flat["requests"]), 2) for k, m in meters.items()}
    tally = _tally([flat, paced], stored)
    exact = tally["lost"] == 0 and tally["doubled"] == 0
    check = (
        f"stored {stored:,}, acked {tally['acked']:,} ({tally['resent_after_timeout']:,} as "
        f"duplicates of an attempt left unanswered): {tally['lost']} lost, "
        f"{tally['doubled']} doubled"
    )
    lat = paced["latency_ms"]
    extra = {
        "flat_out": flat,
        "paced": paced,
        "alone": alone["latency_ms"],
        "warmup_accepted": warm_accepted,
        "stored": stored,
        **tally,
        "exact": exact,
        "register_s": round(register_s, 2),
        "query_failures": loop.failures,
        "queries": len(loop.latencies),
        "rss_per_process_mb": [round(p / 1e6, 1) for p in peaks],
        "cpu_ms_per_request": cpu_ms,
        "raw_ceiling": ceiling,
        "hub_connections": held,
        "raw_from_hub_connections": same,
        "raw_fresh_ranges": fresh,
    }
    shape = f"{gateways:,} gateways x {BATCH} readings, {SENSORS} sensors each"
    return [
        Row(
            f"fleet flat out ({target.label})",
            flat["readings_per_s"],
            "readings/s",
            f"raw {BATCH}-row transactions into the hub's table, in the fleet's key ranges",
            raw,
            "capacity; 0 lost or doubled",
            note=(
                f"{shape}, each as fast as the hub answers, {flat['elapsed_s']:.0f}s "
                f"(p99 {flat['latency_ms']['p99']:.0f} ms with every gateway in flight); "
                f"{check}; errors {_errors(flat)}; the raw rows in fresh key ranges (gateway "
                f"ids no gateway has): {fresh:,.0f}/s, "
                f"{flat['readings_per_s'] / fresh:.2f}x"
                + _held_note(flat["readings_per_s"], held, same)
                + _budget_note(cpu_ms, ceiling)
            ),
            extra=extra,
        ),
        Row(
            f"fleet paced ({target.label})",
            paced["readings_per_s"],
            "readings/s",
            "offered rate",
            offered,
            ">= 120,000/s on PostgreSQL, workers=2",
            note=(
                f"{shape} at {offered:,.0f}/s offered (120k, or {PACED_SHARE:.0%} of flat out"
                " if less), "
                f"{paced['elapsed_s']:.0f}s; errors {_errors(paced)}"
            ),
        ),
        Row(
            f"fleet ingest p99 ({target.label})",
            lat["p99"],
            "ms",
            "one gateway alone, p99",
            alone["latency_ms"]["p99"],
            "< 250 ms (PostgreSQL, workers=2)",
            note=(
                f"from each batch's slot to its answer: p50 {lat['p50']:.1f} / p90 "
                f"{lat['p90']:.1f} / max {lat['max']:.0f} ms over {paced['requests']:,} requests"
            ),
        ),
        Row(
            f"fleet query p99 ({target.label})",
            p99(loop.latencies),
            "ms",
            "the same queries, hub idle",
            p99(idle.latencies),
            "< 100 ms during the load (PostgreSQL, workers=2)",
            note=(
                f"{len(loop.latencies)} series/stats queries (last 10 min) at {QUERY_RATE:.0f}/s"
                f" over {len(sensors)} sensors; failures {loop.failures or 'none'}"
            ),
        ),
        Row(
            f"fleet RSS/worker ({target.label})",
            max(peaks or [0]) / 1e6,
            "MB",
            "hub RSS before the load",
            idle_rss / 1e6,
            "bounded",
            note="peak resident set of each hub process over both fleet runs: "
            + (", ".join(f"{p / 1e6:.0f}" for p in peaks) or "-")
            + " MB",
        ),
    ]


def _cpu_meters(hub: Hub, target: Target) -> dict[str, CpuMeter]:
    assert hub.proc.popen is not None
    meters = {"hub": CpuMeter(hub.proc.popen.pid).start()}
    if target.server_pid is not None:
        meters["server"] = CpuMeter(target.server_pid()).start()
    return meters


def _held_note(rate: float, held: int | None, same: float | None) -> str:
    """The raw rows from as many connections as the hub's processes held (PostgreSQL)."""
    if not held or same is None:
        return ""
    return (
        f"; the raw rows in the fleet's key ranges from {held} connections at once (as many "
        f"as the hub's processes held): {same:,.0f}/s, {rate / same:.2f}x"
    )


def _budget_note(cpu_ms: dict[str, float], ceiling: float | None) -> str:
    """What one request costs in CPU, and what the goal's rate would take at that cost."""
    cores = os.cpu_count() or 1
    per_request = sum(cpu_ms.values())
    need = GOAL_RATE / BATCH * per_request / 1000
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms.items())
    note = (
        f"; CPU ms per {BATCH}-reading request: {parts}: {GOAL_RATE / 1000:.0f}k/s at that "
        f"cost needs {need:.1f} cores before edge-load's share (this machine: {cores})"
    )
    if ceiling is not None:
        note += (
            f"; raw {BATCH}-row COPY transactions from {CEILING_CONNECTIONS} connections at "
            f"once, nothing else running: {ceiling / 1000:.0f}k/s"
        )
    return note


def _guarded(
    target: Target, hub: Hub, wd: Path, seconds: float, gateways: int, raw_n: int
) -> list[Row]:
    """One target's rows; a target that cannot run prints why (with the hub's log) and gives
    no rows, so the other benchmarks' results are still written."""
    try:
        return _run_target(target, hub, wd, seconds, gateways, raw_n)
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        print(f"[bench] fleet ({target.label}) FAILED, rows left out: {exc}")
        print(hub.proc.log_tail(20))
        return []
    finally:
        target.cleanup()


def run(workdir: Path, seconds: float = 20.0, gateways: int = GATEWAYS) -> list[Row]:
    rows: list[Row] = []
    for workers in (1, 2):
        wd = workdir / f"fleet-sqlite-{workers}"
        wd.mkdir()
        target, hub = _sqlite_target(wd, workers)
        rows += _guarded(target, hub, wd, seconds, gateways, raw_n=300_000)
    wd = workdir / "fleet-postgres"
    wd.mkdir()
    pg = _postgres_target(wd)
    if pg is not None:
        rows += _guarded(*pg, wd, seconds, gateways, raw_n=300_000)
    return rows

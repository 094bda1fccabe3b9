"""Rows: what one 100-reading ingest request costs in CPU, by stage, without HTTP in the way.

The fleet rows measure the whole hub under 1,000 gateways; here the same request (a gzip
batch of 100 readings over 5 sensors, as edge-load sends it) goes through the hub's own code
in this process, one after another: authenticate the token, decode and check the batch, store
it (hub.ingest.ingest), for each engine. Each stage's CPU is this thread's CPU time, so other
load on a shared machine inflates it less than a wall clock would.

On PostgreSQL the server's CPU for the same requests (every backend, from the postmaster down)
is set against a raw 100-row binary COPY transaction per request into the same ``readings``
table from one connection, in turns with the hub's requests (the machine's speed drifts
within a run): the least PostgreSQL can do for such a batch. The raw rows go where the hub's
went, under the same gateways and sensors (seqs past theirs);
the same rows under gateway ids no gateway has and one set of sensors (fresh key ranges, the
baseline until 2026-12-07) are in the row's note.

Usage: python -m bench.request_cost [--requests N] (or ``just bench --only cost``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import robyn_floor
from bench.common import CpuMeter, Row
from bench.pgserver import PgBenchServer, copy_readings
from hub import ingest
from hub.auth import GatewayTokenCache, TokenLookup, authenticate, generate_token, hash_token
from hub.ratelimit import Draw
from hub.storage import Storage
from hub.storage.engines import open_storage
from shared.wire import Batch, WireReading, encode_batch

GATEWAYS = 100
SENSORS = 5
BATCH = 100
LIMIT = 10**8  # body limits far above a batch: the checks run, nothing is refused


def _bodies(tokens: list[str], rounds: int, t0: float) -> list[tuple[str, bytes]]:
    """``rounds`` batches per gateway, in fleet order (every gateway's first, then ...)."""

    def body(g: int, i: int) -> bytes:
        readings = [
            WireReading(
                i * BATCH + k + 1, f"l1/m{g}/s{k % SENSORS}", t0 + (i * BATCH + k) * 0.001, 50.0
            )
            for k in range(BATCH)
        ]
        return encode_batch(Batch(gateway_id=f"gw-{g}", readings=readings, sent_at=t0))

    return [(tokens[g], body(g, i)) for i in range(rounds) for g in range(len(tokens))]


def _stages(
    storage: Storage, tokens: TokenLookup, work: list[tuple[str, bytes]]
) -> dict[str, float]:
    """CPU seconds of this thread in each stage over ``work``, the token looked up in
    ``tokens`` (the hub's per-process cache, or storage itself as before the cache)."""
    spent = {"auth": 0.0, "decode_and_check": 0.0, "store": 0.0}
    window = ingest.NO_WINDOW
    for token, body in work:
        t0 = time.thread_time()
        principal = authenticate(tokens, f"Bearer {token}")
        t1 = time.thread_time()
        ingest.decode(body, "gzip", max_decompressed_bytes=LIMIT, window=window)
        t2 = time.thread_time()
        # The whole request (it decodes again): store's share is the rest.
        ingest.ingest(
            storage, principal, body, "gzip", max_body_bytes=LIMIT, max_decompressed_bytes=LIMIT
        )
        t3 = time.thread_time()
        spent["auth"] += t1 - t0
        spent["decode_and_check"] += t2 - t1
        spent["store"] += (t3 - t2) - (t2 - t1)
    return spent


def measure(
    url: str,
    requests: int,
    server_pid: Callable[[], int] | None,
    between: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Per-request CPU (ms) of each stage, and the server's when ``server_pid`` is given:
    ``requests`` as the hub runs them, as many without its token cache (``*_uncached``), as
    many stored step by step, a statement per part as before the one-statement batch
    (``*_steps``), and as many with ``rollups = false`` (``*_norollups``: what the rollup
    fold costs), in turns (three rounds each) so that load from elsewhere lands on every
    side alike; ``between`` runs after each turn (the raw baseline's turns)."""
    storage = open_storage(url)
    try:
        storage.migrate()
        tokens = []
        for g in range(GATEWAYS):
            token = generate_token("gateway")
            storage.add_gateway(f"gw-{g}", "bench", hash_token(token))
            tokens.append(token)
        cache = GatewayTokenCache(storage)
        sides: dict[str, TokenLookup] = {
            "uncached": storage,
            "cached": cache,
            "steps": cache,
            "norollups": cache,
        }
        t0 = time.time()
        rounds = len(sides) * requests // GATEWAYS + 1
        bodies = _bodies(tokens, rounds, t0)
        # The first round makes the sensors and fills the caches: not what a fleet's steady
        # state costs.
        _stages(storage, cache, bodies[:GATEWAYS])
        work = bodies[GATEWAYS : GATEWAYS + len(sides) * requests]
        turns = 3 * len(sides)
        size = len(work) // turns
        totals = {side: {"wall": 0.0, "server": 0.0, "n": 0.0} for side in sides}
        order = list(sides)
        for turn in range(turns):
            side = order[turn % len(order)]
            storage.ingest.at_once = side != "steps"
            storage.maintain_rollups = side != "norollups"
            chunk = work[turn * size : (turn + 1) * size]
            server = CpuMeter(server_pid()).start() if server_pid else None
            wall = time.perf_counter()
            for stage, seconds in _stages(storage, sides[side], chunk).items():
                totals[side][stage] = totals[side].get(stage, 0.0) + seconds
            totals[side]["wall"] += time.perf_counter() - wall
            totals[side]["n"] += len(chunk)
            if server is not None:
                server.sample()
                totals[side]["server"] += server.seconds
            if between is not None:
                between()
        out: dict[str, Any] = {}
        for side, spent in totals.items():
            n = spent.pop("n")
            suffix = "" if side == "cached" else f"_{side}"
            per = {k: v * 1000 / n for k, v in spent.items()}
            per["hub"] = per["auth"] + per["decode_and_check"] + per["store"]
            if server_pid is None:
                del per["server"]
            out.update({f"{k}{suffix}": v for k, v in per.items()})
        return out
    finally:
        storage.close()


def hub_ranges(url: str) -> list[tuple[int, list[int]]]:
    """The gateways the requests came from, each with its sensors' ids (``l1/m{g}/...``)."""
    import psycopg

    with psycopg.connect(url) as conn:
        gateways = conn.execute("SELECT id, name FROM gateways ORDER BY id").fetchall()
        sensors = conn.execute("SELECT id, key FROM sensors").fetchall()
    ranges = []
    for gid, name in gateways:
        prefix = f"l1/m{name.removeprefix('gw-')}/"
        ranges.append((int(gid), sorted(int(i) for i, key in sensors if key.startswith(prefix))))
    return ranges


def fresh_ranges() -> list[tuple[int, list[int]]]:
    """Gateway ids no hub gateway has, all on sensor ids 1..SENSORS."""
    return [((1 << 20) + g, list(range(1, SENSORS + 1))) for g in range(GATEWAYS)]


class RawCopies:
    """Raw 100-row binary COPYs into ``readings``, a turn at a time (``per_turn`` each), the
    sides taking turns: each side's key ranges (resolved at its first turn, once the hub has
    made its gateways and sensors). Per transaction, the server's CPU and this client's.
    Run between the hub's own turns, so that the machine's speed, which drifts within a run,
    lands on the baseline and the hub alike."""

    def __init__(
        self,
        server: PgBenchServer,
        sides: dict[str, Callable[[], list[tuple[int, list[int]]]]],
        per_turn: int,
    ) -> None:
        self.server = server
        self.sides = sides
        self.per_turn = per_turn
        self._ranges: dict[str, list[tuple[int, list[int]]]] = {}
        self._spent = {side: {"server": 0.0, "client": 0.0} for side in sides}
        self._done = dict.fromkeys(sides, 0)
        self._turn = 0
        self._t0 = time.time()
        self._conn: Any = None  # one connection for every turn, opened at the first

    def turn(self) -> None:
        import psycopg

        side = list(self.sides)[self._turn % len(self.sides)]
        self._turn += 1
        if side not in self._ranges:
            self._ranges[side] = self.sides[side]()
        ranges = self._ranges[side]
        if self._conn is None:
            self._conn = psycopg.connect(self.server.url())
        start = 1 << 30  # past every seq the requests sent
        pg = CpuMeter(self.server.postmaster_pid()).start()
        client = CpuMeter(os.getpid()).start()
        for _ in range(self.per_turn):
            i = self._done[side]
            self._done[side] += 1
            g, sensors = ranges[i % len(ranges)]
            seq = start + (i // len(ranges)) * BATCH
            copy_readings(
                self._conn,
                (
                    (
                        (g << 40) + seq + k + 1,
                        sensors[k % len(sensors)],
                        self._t0 + k * 0.001,
                        50.0,
                        g,
                        seq + k + 1,
                    )
                    for k in range(BATCH)
                ),
            )
        pg.sample()
        client.sample()
        self._spent[side]["server"] += pg.seconds
        self._spent[side]["client"] += client.seconds

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def result(self) -> dict[str, dict[str, float]]:
        """Per-transaction CPU (ms) of each side so far."""
        return {
            side: {k: v * 1000 / max(1, self._done[side]) for k, v in cost.items()}
            for side, cost in self._spent.items()
        }


def _fmt(cost: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in cost.items())


def _cache_row(engine: str, cost: dict[str, float]) -> Row:
    """The hub's CPU per request with its token cache against the same without it."""
    return Row(
        f"hub CPU per request with the token cache ({engine})",
        cost["hub"],
        "ms",
        "the same requests without it",
        cost["hub_uncached"],
        "< 1.0x",
        note=f"token check {cost['auth']:.3f} ms, without the cache {cost['auth_uncached']:.3f} ms",
    )


def _steps_rows(pg: dict[str, float]) -> list[Row]:
    """The one-statement batch against the same requests stored a statement per part."""
    return [
        Row(
            "hub CPU per request, usual batch in one statement (PostgreSQL)",
            pg["hub"],
            "ms",
            "the same requests stored step by step",
            pg["hub_steps"],
            "< 1.0x",
            note=f"store {pg['store']:.3f} ms, step by step {pg['store_steps']:.3f} ms",
        ),
        Row(
            "PostgreSQL CPU per request, usual batch in one statement",
            pg["server"],
            "ms",
            "the same requests stored step by step",
            pg["server_steps"],
            "< 1.0x",
        ),
    ]


def _robyn_row(hub_ms: float, seconds: float) -> Row:
    """A bare Robyn app's CPU per request under edge-load (bench.robyn_floor), against the
    hub's own per request in process: the share of a request Robyn takes."""
    floor = robyn_floor.measure(seconds, gateways=200)
    return Row(
        "bare Robyn handler CPU per 100-reading request",
        floor["cpu_ms_per_request"],
        "ms",
        "hub CPU per request in process (SQLite)",
        hub_ms,
        "(Robyn's share)",
        note=f"200 edge-load gateways flat out for {seconds:.0f}s at a handler that reads the "
        f"body and answers; {floor['requests_per_s']:,.0f} requests/s",
    )


def visit_cost(url: str, visits: int, server_pid: int) -> dict[str, float]:
    """A rate-limit visit to the shared bucket on PostgreSQL (hub.storage.quotas), as the hub
    makes it (read, then a write only if the row is unchanged) and as one transaction that
    locks the row, in turns (ten each, over 50 buckets): per visit, the hub's CPU (this
    thread), the server's CPU and the wall time, in ms."""
    storage = open_storage(url)
    try:
        storage.migrate()
        sides = {"swap": storage.quotas.lease, "locked": storage.quotas._locked_lease}
        totals = {side: [0.0, 0.0, 0.0] for side in sides}
        per_turn = max(1, visits // 10)
        for _ in range(10):
            for side, visit in sides.items():
                server = CpuMeter(server_pid).start()
                cpu, wall = time.thread_time(), time.perf_counter()
                for i in range(per_turn):
                    visit("requests", i % 50, Draw(0.0, 1.0, 10.0, 100.0, 1000.0, time.time()))
                spent = totals[side]
                spent[0] += time.thread_time() - cpu
                spent[2] += time.perf_counter() - wall
                server.sample()
                spent[1] += server.seconds
        n = 10 * per_turn
        return {
            f"{kind}_{side}": spent[i] * 1000 / n
            for side, spent in totals.items()
            for i, kind in enumerate(("hub", "server", "wall"))
        }
    finally:
        storage.close()


def _visit_row(cost: dict[str, float]) -> Row:
    return Row(
        "rate-limit visit to the shared bucket, hub + PostgreSQL CPU (compare-and-swap)",
        cost["hub_swap"] + cost["server_swap"],
        "ms",
        "the same visits as one transaction that locks the row",
        cost["hub_locked"] + cost["server_locked"],
        "< 1.0x",
        note=(
            f"hub {cost['hub_swap']:.3f} against {cost['hub_locked']:.3f} ms, server "
            f"{cost['server_swap']:.3f} against {cost['server_locked']:.3f} ms, wall "
            f"{cost['wall_swap']:.3f} against {cost['wall_locked']:.3f} ms per visit; one "
            "request in ten visits at the defaults"
        ),
        extra={"visit_ms": cost},
    )


def run(workdir: Path, requests: int = 2000) -> list[Row]:
    from tests.pg import bin_dir

    sqlite = measure(f"sqlite:///{workdir / 'cost.db'}", requests, None)
    rows = [
        Row(
            "hub CPU per 100-reading request (SQLite)",
            sqlite["hub"],
            "ms",
            "target",
            1.0,
            "<= 1.0 ms (with Robyn: see the fleet row)",
            note=f"in process, {requests:,} requests; ms by stage: {_fmt(sqlite)}",
            extra={"stages_ms": sqlite},
        ),
        _cache_row("SQLite", sqlite),
        _robyn_row(sqlite["hub"], seconds=5.0 if requests < 2000 else 10.0),
    ]
    found = bin_dir()
    if found is None:
        print("[bench] request cost: no PostgreSQL server binaries; PostgreSQL rows left out")
        return rows
    server = PgBenchServer(found).start()
    try:
        # 12 turns of the hub's, each followed by one of the baseline's: each side gets
        # about ``requests`` transactions.
        copies = RawCopies(
            server,
            {"own": lambda: hub_ranges(server.url()), "fresh": fresh_ranges},
            per_turn=max(1, requests // 6),
        )
        try:
            pg = measure(server.url(), requests, server.postmaster_pid, between=copies.turn)
        finally:
            copies.close()
        raw, fresh = copies.result()["own"], copies.result()["fresh"]
        visits = visit_cost(server.url(), requests, server.postmaster_pid())
    finally:
        server.stop()
    return [
        *rows,
        Row(
            "hub CPU per 100-reading request (PostgreSQL)",
            pg["hub"],
            "ms",
            "target",
            1.0,
            "<= 1.0 ms (with Robyn: see the fleet row)",
            note=f"in process, {requests:,} requests; ms by stage: {_fmt(pg)}",
            extra={"stages_ms": pg},
        ),
        _cache_row("PostgreSQL", pg),
        *_steps_rows(pg),
        Row(
            "PostgreSQL CPU per 100-reading request with rollups = false",
            pg["server_norollups"],
            "ms",
            "raw 100-row binary COPY transaction, the hub's key ranges",
            raw["server"],
            "(the rollup fold's share)",
            note=f"the same requests in turns with the others; with rollups {pg['server']:.2f} ms",
        ),
        Row(
            "PostgreSQL CPU per 100-reading request",
            pg["server"],
            "ms",
            "raw 100-row binary COPY transaction, the hub's key ranges",
            raw["server"],
            "<= 1.5x",
            note=(
                f"the same requests, one connection; raw COPY ms: {_fmt(raw)}; in fresh key "
                f"ranges: {_fmt(fresh)} ({pg['server'] / fresh['server']:.2f}x)"
            ),
            extra={"raw_copy_ms": raw, "raw_copy_fresh_ms": fresh},
        ),
        _visit_row(visits),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.request_cost", description=__doc__)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-edge-cost-") as tmp:
        for row in run(Path(tmp), args.requests):
            print(f"{row.name}: {row.value:.2f} {row.unit} ({row.ratio:.2f}x {row.baseline_name})")
            print(f"    {row.note}")


if __name__ == "__main__":
    main()

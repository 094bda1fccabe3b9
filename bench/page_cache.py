"""Row: what the size of SQLite's page cache costs a stored batch once the cache is full.

The hub's SQLite connections keep an 8 MB page cache that a write transaction may outgrow
before it spills (``hub.storage.sqlite.pool.SETTINGS``); until 2026-12-08 they kept 64 MB.
Ending a write transaction costs SQLite time in proportion to the pages its cache holds,
which shows only on a database larger than the cache once the cache is full: a fleet's,
whose gateways' batches land all over the readings' key and index. This row builds such a
database through the hub's own storage (1,000 gateways of 5 sensors each, 100-reading
batches), copies it, and stores the same further batches into each copy, one storage with
the hub's settings and one with the 64 MB cache, in turns (after a warm-up that fills both
caches); each side's figure is this thread's CPU per batch.

Usage: python -m bench.page_cache [--rounds N] (or ``just bench --only cost``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.common import Row
from hub.storage import GatewayReport, Storage
from hub.storage.engines import open_storage
from shared.wire import WireReading

GATEWAYS = 1000
SENSORS = 5
BATCH = 100
# The cache the hub kept until 2026-12-08, in SQLite's negative-KiB form.
BEFORE = -65536
REPORT = GatewayReport(backlog=0, dropped=0, dead_letters=0, agent_version="bench")

# (gateway id, factory id, gateway name)
Gateway = tuple[int, int, str]


def _batch(gateway: Gateway, round_: int, t0: float) -> list[WireReading]:
    _, _, name = gateway
    first = round_ * BATCH + 1
    return [
        WireReading(
            first + i,
            f"{name}/m0/s{i % SENSORS}",
            t0 + round_ * 10 + i * 0.01,
            50.0 + (first + i) % 97 / 10,
            None,
        )
        for i in range(BATCH)
    ]


def _store_rounds(
    storage: Storage, gateways: list[Gateway], rounds: range, t0: float
) -> tuple[float, int]:
    """Every gateway's batch of each round, gateway after gateway as a fleet's arrive:
    (this thread's CPU seconds, batches)."""
    spent, n = 0.0, 0
    for round_ in rounds:
        for gateway in gateways:
            readings = _batch(gateway, round_, t0)
            start = time.thread_time()
            storage.store_batch(gateway[0], gateway[1], readings, REPORT)
            spent += time.thread_time() - start
            n += 1
    return spent, n


def _build(path: Path, rounds: int, t0: float) -> list[Gateway]:
    storage = open_storage(f"sqlite:///{path}")
    try:
        storage.migrate()
        gateways: list[Gateway] = []
        for g in range(GATEWAYS):
            name = f"gw-{g:04d}"
            gid = storage.add_gateway(name, "bench", f"{g:064x}")
            row = storage.db.fetchone("SELECT factory_id FROM gateways WHERE id = ?", (gid,))
            assert row is not None
            gateways.append((gid, int(row[0]), name))
        _store_rounds(storage, gateways, range(rounds), t0)
        return gateways
    finally:
        storage.close()  # checkpoints: the copies below are whole databases


def measure(workdir: Path, rounds: int = 10, turns: int = 3) -> dict[str, float]:
    """CPU ms per stored batch with the hub's settings and with the 64 MB cache, and the
    database's size in MB."""
    t0 = time.time() - 86400
    built = workdir / "fleet.db"
    gateways = _build(built, rounds, t0)
    sides: dict[str, Storage] = {}
    for side in ("hub", "before"):
        copy = workdir / f"{side}.db"
        shutil.copy(built, copy)
        sides[side] = open_storage(f"sqlite:///{copy}")
    try:
        with sides["before"].db.write() as conn:
            conn.execute(f"PRAGMA cache_size={BEFORE}")
        # Two rounds each: every gateway's pages pass through each writer's cache.
        for storage in sides.values():
            _store_rounds(storage, gateways, range(rounds, rounds + 2), t0)
        totals = {side: [0.0, 0] for side in sides}
        next_round = rounds + 2
        for _ in range(turns):
            for side, storage in sides.items():
                spent, n = _store_rounds(storage, gateways, range(next_round, next_round + 1), t0)
                totals[side][0] += spent
                totals[side][1] += n
            next_round += 1
    finally:
        for storage in sides.values():
            storage.close()
    return {
        **{side: spent * 1000 / n for side, (spent, n) in totals.items()},
        "mb": built.stat().st_size / 1e6,
    }


def run(workdir: Path, rounds: int = 10) -> list[Row]:
    got = measure(workdir, rounds)
    return [
        Row(
            "SQLite CPU per stored 100-reading batch, the hub's page cache full",
            got["hub"],
            "ms",
            "the same batches with the 64 MB cache of before",
            got["before"],
            "< 1.0x",
            note=(
                f"{GATEWAYS:,} gateways x {SENSORS} sensors, a {got['mb']:.0f} MB database "
                f"({rounds * GATEWAYS * BATCH:,} readings) copied for each side, the two in "
                "turns after two warm-up rounds; in process, through the hub's storage"
            ),
        )
    ]


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(prog="python -m bench.page_cache", description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp), args.rounds):
            print(
                f"{row.name}: {row.value:.3f} {row.unit} against {row.baseline:.3f} "
                f"({row.ratio:.2f}x); {row.note}"
            )


if __name__ == "__main__":
    main()

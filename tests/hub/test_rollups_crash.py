"""A writer SIGKILLed mid-ingest never leaves a rollup that misses or double-counts a stored
reading: the fold commits with the readings or not at all. Both engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from hub.storage import open_storage
from tests.hub.conftest import ROOT, clean_env, query

# Stores batches of 2,000 readings (seqs from argv[2] on, every batch twice: the second time
# nothing is new) and says "stored N" after each commit, until killed.
WRITER = textwrap.dedent(
    """
    import os
    import sys
    from hub.storage import GatewayReport, open_storage
    from shared.wire import WireReading

    storage = open_storage(sys.argv[1])
    storage.migrate()
    gateway = storage.add_gateway("gw-k", "acme", f"hash-{os.getpid()}", rotate=True)
    factory = storage.get_gateway("gw-k")["factory_id"]
    seq = int(sys.argv[2])
    n = 0
    while True:
        batch = [
            WireReading(s, f"l/m/s{s % 3}", 1_700_000_000.0 + s * 0.7, float(s % 97), None)
            for s in range(seq, seq + 2000)
        ]
        for _ in range(2):
            storage.store_batch(gateway, factory, batch, GatewayReport(0, 0, 0, "k"))
            n += 1
            print("stored", n, flush=True)
        seq += 2000
    """
)


def kill_after(database_url: str, first_seq: int, batches: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url, str(first_seq)],
        env=clean_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == f"stored {batches}":
            break
    # The writer is inside its next batch by now (it starts one at once).
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def consistent(database_url: str) -> int:
    storage = open_storage(database_url)
    try:
        raw = query(storage, "SELECT sensor_id, count(*), sum(value) FROM readings GROUP BY 1")
        for table in ("rollup_1m", "rollup_1h", "rollup_12h"):
            tier = query(storage, f"SELECT sensor_id, sum(count), sum(sum) FROM {table} GROUP BY 1")
            assert sorted((int(s), int(n), float(v)) for s, n, v in tier) == sorted(
                (int(s), int(n), float(v)) for s, n, v in raw
            ), table
        return sum(int(r[1]) for r in raw)
    finally:
        storage.close()


def test_sigkill_mid_ingest_keeps_rollups_exact(database_url: str) -> None:
    kill_after(database_url, 1, 5)
    stored = consistent(database_url)
    assert stored >= 4000
    # Start over from seq 1 (an agent re-sending its unacknowledged backlog): the old
    # batches store and fold nothing, the new ones both; killed again mid-way.
    kill_after(database_url, 1, stored // 2000 * 2 + 6)
    assert consistent(database_url) > stored

"""A backlog as an outage leaves it: readings written straight into an agent's buffer file.

Used by the outage tests and the backlog benchmark, where going through MQTT would take longer
than what is measured. The rows go in with plain SQL through the buffer's own schema (made by
``agent.buffer.Buffer``), so its triggers keep the backlog count as ingest would.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.buffer import Buffer

# Rows per transaction, as drain.py's prefill commits them. One transaction of millions of
# rows leaves a file the agent drains at about half the rate (measured: 46k/s against
# 91k/s for 1M readings); ingest itself commits at most mqtt.batch_max rows at a time.
_CHUNK = 50_000


def sensor_key(i: int, sensors: int) -> str:
    s = i % sensors
    return f"line{s % 4}/m{s // 4 % 25}/s{s}"


def value_of(i: int) -> float:
    """The value of the i-th prefilled reading (0-based), to check content at the hub."""
    return 50.0 + (i % 97) / 10.0


def prefill(path: Path, n: int, sensors: int = 1000, t0: float | None = None) -> float:
    """Append ``n`` readings (seqs after whatever the file holds); returns the seconds taken."""
    start = time.perf_counter()
    Buffer(path, max_bytes=1 << 50).close()
    t0 = time.time() - 86400 if t0 is None else t0
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        for lo in range(0, n, _CHUNK):
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i < ?)"
                " INSERT INTO readings(key, ts, value, unit, received_at)"
                " SELECT 'line' || (i % ?3 % 4) || '/m' || (i % ?3 / 4 % 25) || '/s' || (i % ?3),"
                " ?4 + i * 0.001, 50.0 + (i % 97) / 10.0, 'C', ?4 + i * 0.001 FROM c",
                (lo, min(n, lo + _CHUNK) - 1, sensors, t0),
            )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return time.perf_counter() - start

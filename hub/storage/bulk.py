"""Back-fill of readings by sensor id (``POST /readings/bulk``), idempotent by (sensor, ts).

A back-filled reading has no gateway and no seq, so the (gateway, seq) key that makes a
sync batch idempotent does not apply. Its key is (sensor, ts) instead, held by
``bulk_keys``: the key is claimed first (``ON CONFLICT DO NOTHING RETURNING`` answers only
the keys that were free) and the reading is stored with the key's id as its id, through
the engine's one insert path for readings, the path every reading takes. A body posted
twice, or overlapping an earlier one, stores each (sensor, ts) once. All or nothing: a body
naming a sensor that does not exist stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hub.storage.changelog import AuditEntry, Who, write_entry
from hub.storage.dialect import Dialect
from hub.storage.model import ReadingRow, StorageError
from hub.storage.sqlbase import Conn, Database

# Rows per INSERT ... VALUES statement: 2 parameters each, well under SQLite's limit.
_CHUNK = 400
# Bulk rows take gateway 0's id range (gateway row ids start at 1): ids below 2^40.
BULK_GATEWAY = 0

# (sensor_id, ts, value)
BulkRow = tuple[int, float, float]


class UnknownSensors(StorageError):
    def __init__(self, missing: Sequence[int]) -> None:
        super().__init__(f"no sensor with id {', '.join(map(str, missing))}")
        self.missing = list(missing)


class ReadingsIn(Protocol):
    """The one insert path of readings (hub.storage.ingest), folds included."""

    def insert_rows(self, conn: Conn, rows: list[ReadingRow]) -> int: ...


class Backfill:
    def __init__(self, db: Database, dialect: Dialect, readings_in: ReadingsIn) -> None:
        self._db = db
        self._dialect = dialect
        self._readings_in = readings_in

    def bulk_insert(self, rows: Sequence[BulkRow], actor: Who) -> int:
        """Store ``rows``; returns how many were new (the rest were stored already)."""
        if not rows:
            return 0
        # The first value given for a (sensor, ts) in this body is the one stored.
        values: dict[tuple[int, float], float] = {}
        for sensor_id, ts, value in rows:
            values.setdefault((sensor_id, ts), value)
        keys = list(values)
        # PostgreSQL: the partitions of these days exist before the transaction starts.
        self._dialect.before_readings(sorted({ts for _, ts in keys}))
        sensor_ids = sorted({s for s, _ in keys})
        with self._db.write() as conn:
            # Held until the commit, so no deletion of these sensors runs in between.
            known = self._dialect.lock_sensors(conn, sensor_ids)
            missing = [s for s in sensor_ids if s not in known]
            if missing:
                raise UnknownSensors(missing)
            fresh: list[ReadingRow] = []
            # In key order: concurrent bulk posts take their index locks in the same order.
            keys.sort()
            for i in range(0, len(keys), _CHUNK):
                part_keys = keys[i : i + _CHUNK]
                marks = ", ".join("(?, ?)" for _ in part_keys)
                params = [x for key in part_keys for x in key]
                claimed = conn.execute(
                    f"INSERT INTO bulk_keys (sensor_id, ts) VALUES {marks} "
                    "ON CONFLICT (sensor_id, ts) DO NOTHING RETURNING id, sensor_id, ts",
                    params,
                ).fetchall()
                for rid, sensor_id, ts in claimed:
                    value = values[(int(sensor_id), float(ts))]
                    fresh.append(
                        (int(rid), int(sensor_id), float(ts), value, BULK_GATEWAY, int(rid))
                    )
            inserted = self._readings_in.insert_rows(conn, sorted(fresh)) if fresh else 0
            write_entry(
                conn,
                AuditEntry(
                    actor,
                    "readings.bulk",
                    "readings",
                    None,
                    {
                        "rows": len(rows),
                        "inserted": inserted,
                        "sensors": sensor_ids[:100],
                        "from": min(ts for _, ts in keys),
                        "to": max(ts for _, ts in keys),
                    },
                ),
            )
        # Queued for the anomaly scan in a write of its own, after the readings committed.
        touched = sorted({sensor_id for _, sensor_id, *_ in fresh})
        if touched:
            with self._db.write() as conn:
                self._dialect.queue_scans(conn, touched)
        return inserted

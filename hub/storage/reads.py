"""A sensor's raw readings: ranges, keyset pages, the newest, counts, and their removal with
the sensor (series and stats: hub.storage.rollups, which picks the tier)."""

from __future__ import annotations

from hub.storage.sqlbase import Conn, Database, time_range


class Reads:
    def __init__(self, db: Database) -> None:
        self._db = db

    def readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int
    ) -> list[tuple[int, float, float]]:
        where, params = time_range(sensor_id, start, end)
        rows = self._db.fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def latest(self, sensor_id: int) -> tuple[int, float, float] | None:
        row = self._db.fetchone(
            "SELECT id, ts, value FROM readings WHERE sensor_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            (sensor_id,),
        )
        return None if row is None else (row[0], row[1], row[2])

    def count_readings(self, gateway_id: int | None = None) -> int:
        if gateway_id is None:
            return int(self._db.fetchone("SELECT count(*) FROM readings")[0])
        return int(
            self._db.fetchone("SELECT count(*) FROM readings WHERE gateway_id = ?", (gateway_id,))[
                0
            ]
        )

    def readings_after(
        self,
        sensor_id: int,
        after: tuple[float, int] | None,
        start: float | None,
        end: float | None,
        limit: int,
    ) -> list[tuple[int, float, float]]:
        where, params = time_range(sensor_id, start, end)
        if after is not None:
            # Past (ts, id); the plain ts >= bound lets the (sensor_id, ts) index seek to it.
            where += " AND ts >= ? AND (ts > ? OR id > ?)"
            params += [after[0], after[0], after[1]]
        rows = self._db.fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def readings_before(
        self, sensor_id: int, ts: float, limit: int, since: float | None = None
    ) -> list[float]:
        """The values of the last ``limit`` readings before ``ts`` (at or after ``since``
        when given), oldest first."""
        where = "sensor_id = ? AND ts < ?"
        params: list[float] = [sensor_id, ts]  # sensor_id stays an int (the key's index)
        if since is not None:
            where += " AND ts >= ?"
            params.append(since)
        rows = self._db.fetchall(
            f"SELECT value FROM readings WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [r[0] for r in reversed(rows)]

    def last_readings(
        self, sensor_id: int, limit: int, within: tuple[float, float] | None = None
    ) -> list[tuple[int, float, float]]:
        """The newest ``limit`` readings, oldest first; only those with ``within[0] <= ts <=
        within[1]`` when given (on PostgreSQL the bounds keep the query to those days'
        partitions)."""
        where = "sensor_id = ?"
        params: list[float] = [sensor_id]  # stays an int: sent as one, the key's index applies
        if within is not None:
            where += " AND ts >= ? AND ts <= ?"
            params += within
        rows = self._db.fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [(r[0], r[1], r[2]) for r in reversed(rows)]

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int]:
        """A sensor's readings and back-fill keys, in the deleting transaction."""
        removed: dict[str, int] = {}
        for table in ("readings", "bulk_keys"):
            cur = conn.execute(f"DELETE FROM {table} WHERE sensor_id = ?", (sensor_id,))
            removed[table] = max(cur.rowcount, 0)
        return removed

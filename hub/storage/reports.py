"""Derived reads and the anomaly scan's store: a rolling average beside each reading, the
alert intervals behind a factory's report (its per-sensor statistics come from the rollups'
stats), the scan queue, and each sensor's last scan and its anomalies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hub.storage.dialect import Dialect
from hub.storage.model import FoundAnomaly
from hub.storage.sqlbase import Conn, Database, dicts, time_range
from shared.timeutil import now

# (reading id, ts, value, rolling average)
RollingRow = tuple[int, float, float, float]


class Reports:
    def __init__(self, db: Database, dialect: Dialect) -> None:
        self._db = db
        self._dialect = dialect

    # -- the anomaly scan ----------------------------------------------------------------

    def take_scan_queue(self, limit: int) -> list[int]:
        with self._db.write() as conn:
            rows = conn.execute(
                "DELETE FROM scan_queue WHERE sensor_id IN "
                "(SELECT sensor_id FROM scan_queue ORDER BY sensor_id LIMIT ?) "
                "RETURNING sensor_id",
                (limit,),
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def requeue_scans(self, sensor_ids: Sequence[int]) -> None:
        if not sensor_ids:
            return
        with self._db.write() as conn:
            self._dialect.queue_scans(conn, sorted(sensor_ids))

    def store_anomaly_scan(
        self,
        sensor_id: int,
        method: str,
        threshold: float,
        analyzed: int,
        statistics: dict[str, Any],
        found: Sequence[FoundAnomaly],
    ) -> int:
        at = now()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO anomaly_scans "
                "(sensor_id, scanned_at, method, threshold, analyzed, statistics) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id) DO UPDATE SET "
                "scanned_at = excluded.scanned_at, method = excluded.method, "
                "threshold = excluded.threshold, analyzed = excluded.analyzed, "
                "statistics = excluded.statistics",
                (sensor_id, at, method, threshold, analyzed, json.dumps(statistics)),
            )
            if not found:
                return 0
            cur = conn.executemany(
                "INSERT INTO anomalies (sensor_id, reading_id, ts, value, z_score, idx, "
                "method, threshold, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (sensor_id, reading_id) DO NOTHING",
                [
                    (
                        sensor_id,
                        a.reading_id,
                        a.ts,
                        a.value,
                        a.z_score,
                        a.index,
                        method,
                        threshold,
                        at,
                    )
                    for a in found
                ],
            )
            return cur.rowcount

    def anomaly_scan(self, sensor_id: int) -> dict[str, Any] | None:
        row = self._db.one_dict(
            "SELECT scanned_at, method, threshold, analyzed, statistics FROM anomaly_scans "
            "WHERE sensor_id = ?",
            (sensor_id,),
        )
        if row is not None and isinstance(row["statistics"], str):
            row["statistics"] = json.loads(row["statistics"])
        return row

    def stored_anomalies(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        rows = self._db.all_dicts(
            'SELECT reading_id, ts, value, z_score, idx AS "index", method, threshold, '
            "detected_at FROM anomalies WHERE sensor_id = ? ORDER BY ts DESC, reading_id DESC "
            "LIMIT ?",
            (sensor_id, limit),
        )
        rows.reverse()
        return rows

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int]:
        """A sensor's anomalies and its last scan, in the deleting transaction."""
        removed: dict[str, int] = {}
        for table in ("anomalies", "anomaly_scans"):
            cur = conn.execute(f"DELETE FROM {table} WHERE sensor_id = ?", (sensor_id,))
            removed[table] = max(cur.rowcount, 0)
        return removed

    # -- derived reads -------------------------------------------------------------------

    def rolling_readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int, window: int
    ) -> list[RollingRow]:
        """Readings of [start, end) oldest first (at most ``limit``), each with the average
        of the last ``window`` readings up to and including it. The window reaches back
        before ``start``: the first reading of a range has the same average as in a
        longer range (the seeds' ``AVG(value) OVER (ROWS BETWEEN N-1 PRECEDING ...)``)."""
        where, params = time_range(sensor_id, start, end)
        page = f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?"
        sources = f"SELECT id, ts, value FROM ({page}) a"
        args: list[Any] = [*params, limit]
        if start is not None and window > 1:
            # Only the window - 1 readings just before the range can reach into it.
            sources += (
                " UNION ALL SELECT id, ts, value FROM (SELECT id, ts, value FROM readings "
                "WHERE sensor_id = ? AND ts < ? ORDER BY ts DESC, id DESC LIMIT ?) b"
            )
            args += [sensor_id, start, window - 1]
        # ``window`` is an int the handler bounded; a frame offset as a parameter is not
        # portable (SQLite wants a constant there).
        sql = (
            "SELECT id, ts, value, avg(value) OVER (ORDER BY ts, id "
            f"ROWS BETWEEN {int(window) - 1} PRECEDING AND CURRENT ROW) AS rolling_avg "
            f"FROM ({sources}) u ORDER BY ts, id"
        )
        rows = self._db.fetchall(sql, args)
        return [
            (int(r[0]), float(r[1]), float(r[2]), float(r[3]))
            for r in rows
            if start is None or r[1] >= start
        ]

    def factory_alert_intervals(
        self, factory_id: int, start: float | None, end: float | None
    ) -> list[dict[str, Any]]:
        """Sensor alerts of a factory that were active at some time in [start, end):
        ``{sensor_id, severity, opened_at, cleared_at}`` (cleared_at None: still active).

        Both the alert lifecycle's ``alerts`` and the edge's own
        ``edge_alerts`` count, an edge alert that the lifecycle mirrors only once."""
        overlap: list[str] = []
        args: list[Any] = []
        if end is not None:
            overlap.append("{o} < ?")
            args.append(end)
        if start is not None:
            overlap.append("({c} IS NULL OR {c} >= ?)")
            args.append(start)

        def within(opened: str, cleared: str) -> str:
            return "".join(" AND " + part.format(o=opened, c=cleared) for part in overlap)

        edge = (
            "SELECT e.sensor_id, e.severity, e.opened_at, e.closed_at AS cleared_at "
            "FROM edge_alerts e JOIN sensors s ON s.id = e.sensor_id WHERE s.factory_id = ?"
            + within("e.opened_at", "e.closed_at")
        )
        with self._db.reader(snapshot=True) as conn:
            # An edge alert that is a source of a fleet alert (its sensor's one alarm)
            # counts through that alarm.
            mirrored = " AND e.alarm_id IS NULL"
            fleet = (
                "SELECT sensor_id, severity, opened_at, cleared_at FROM alerts "
                "WHERE factory_id = ? AND sensor_id IS NOT NULL" + within("opened_at", "cleared_at")
            )
            return dicts(
                conn.execute(
                    f"{fleet} UNION ALL {edge}{mirrored}",
                    [factory_id, *args, factory_id, *args],
                )
            )

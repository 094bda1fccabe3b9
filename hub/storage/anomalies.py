"""Anomaly persistence (the background scan's findings) and the edge's alerts per sensor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hub.storage.model import FoundAnomaly
from hub.storage.sqlbase import SqlStorage
from shared.timeutil import now


class AnomaliesMixin(SqlStorage):
    def take_scan_queue(self, limit: int) -> list[int]:
        with self._write() as conn:
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
        with self._write() as conn:
            self._queue_scans(conn, sorted(sensor_ids))

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
        with self._write() as conn:
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
        row = self._one_dict(
            "SELECT scanned_at, method, threshold, analyzed, statistics FROM anomaly_scans "
            "WHERE sensor_id = ?",
            (sensor_id,),
        )
        if row is not None and isinstance(row["statistics"], str):
            row["statistics"] = json.loads(row["statistics"])
        return row

    def stored_anomalies(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        rows = self._all_dicts(
            'SELECT reading_id, ts, value, z_score, idx AS "index", method, threshold, '
            "detected_at FROM anomalies WHERE sensor_id = ? ORDER BY ts DESC, reading_id DESC "
            "LIMIT ?",
            (sensor_id, limit),
        )
        rows.reverse()
        return rows

    def edge_alerts(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        return self._all_dicts(
            "SELECT a.alert_id, g.name AS gateway_id, a.rule, a.breach_type, a.severity, "
            "a.threshold_value, a.value, a.opened_at, a.closed_at, a.reading_seq "
            "FROM edge_alerts a JOIN gateways g ON g.id = a.gateway_id "
            "WHERE a.sensor_id = ? ORDER BY a.opened_at DESC, a.id DESC LIMIT ?",
            (sensor_id, limit),
        )

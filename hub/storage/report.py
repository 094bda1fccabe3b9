"""Derived reads: a rolling average beside each reading, and the alert intervals behind a
factory's report (the report's per-sensor statistics come from :meth:`Storage.stats`, the
read that rollups answer)."""

from __future__ import annotations

from typing import Any

from hub.storage.crud import present_tables
from hub.storage.reads import time_range
from hub.storage.sqlbase import SqlStorage, dicts

# (reading id, ts, value, rolling average)
RollingRow = tuple[int, float, float, float]


class ReportMixin(SqlStorage):
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
        rows = self._fetchall(sql, args)
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

        Both the alert lifecycle's ``alerts`` (when the schema has it) and the edge's own
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
        with self._reader(snapshot=True) as conn:
            if "alerts" not in present_tables(conn, {"alerts"}):
                return dicts(conn.execute(edge, [factory_id, *args]))
            mirrored = (
                " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = e.gateway_id "
                "AND a.edge_alert_id = e.alert_id)"
            )
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

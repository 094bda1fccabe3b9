"""An alert's peak: the most extreme value its source reached while it was active.

Kept in the batch's transaction (hub.storage.alerts): the value the edge reports when an alert
opens or changes severity, and every reading of the alert's sensor stamped between its
opened_at and its cleared_at. "Extreme" follows the breach: the highest value for
``above_maximum``, the lowest for ``below_minimum``; a ``rate_of_change`` alert's value is a
rate, not a reading, so only the edge's values count for it. The readings looked at are those
of alerts still active and of the alerts the batch itself opens or clears (a clear usually
travels with the readings before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from hub.storage.sqlbase import Conn
from shared.wire import WireAlert, WireReading

_CHUNK = 500


def more_extreme(breach: str | None, peak: float | None, value: float) -> bool:
    """Whether ``value`` goes past ``peak`` in the breach's direction."""
    if peak is None:
        return True
    if breach == "below_minimum":
        return value < peak
    if breach == "above_maximum":
        return value > peak
    return abs(value) > abs(peak)


def note_value(conn: Conn, alert_id: int, value: float) -> None:
    """The edge reported ``value`` for the alert: its peak if further out."""
    row = conn.execute(
        "SELECT breach_type, peak_value FROM alerts WHERE id = ?", (alert_id,)
    ).fetchone()
    if row is not None and more_extreme(row[0], row[1], value):
        conn.execute("UPDATE alerts SET peak_value = ? WHERE id = ?", (value, alert_id))


def track_readings(
    conn: Conn,
    gateway_id: int,
    ids: Mapping[str, int],
    readings: Sequence[WireReading],
    alerts: Iterable[WireAlert],
) -> None:
    """Raise the peaks of the alerts the batch's readings fall in (module docstring)."""
    if not readings:
        return
    candidates: dict[int, tuple[int, str, float, float | None, float | None]] = {}
    sensors = sorted({ids[r.key] for r in readings})
    for i in range(0, len(sensors), _CHUNK):
        part = sensors[i : i + _CHUNK]
        marks = ", ".join("?" * len(part))
        for row in conn.execute(
            "SELECT id, sensor_id, breach_type, opened_at, cleared_at, peak_value FROM alerts "
            f"WHERE state = 'active' AND sensor_id IN ({marks})",
            part,
        ).fetchall():
            candidates[int(row[0])] = (int(row[1]), row[2], row[3], row[4], row[5])
    edge_ids = sorted({a.id for a in alerts})
    for i in range(0, len(edge_ids), _CHUNK):
        part = edge_ids[i : i + _CHUNK]
        marks = ", ".join("?" * len(part))
        for row in conn.execute(
            "SELECT id, sensor_id, breach_type, opened_at, cleared_at, peak_value FROM alerts "
            "WHERE id IN (SELECT alarm_id FROM edge_alerts WHERE gateway_id = ? "
            f"AND alert_id IN ({marks}))",
            (gateway_id, *part),
        ).fetchall():
            candidates[int(row[0])] = (int(row[1]), row[2], row[3], row[4], row[5])
    if not candidates:
        return  # the usual batch: no alert of its sensors is active
    by_sensor: dict[int, list[tuple[float, float]]] = {}
    for r in readings:
        by_sensor.setdefault(ids[r.key], []).append((r.ts, r.value))
    for alert_id, (sensor, breach, opened, cleared, peak) in candidates.items():
        if breach not in ("above_maximum", "below_minimum"):
            continue
        inside = [
            v
            for ts, v in by_sensor.get(sensor, ())
            if ts >= opened and (cleared is None or ts <= cleared)
        ]
        if not inside:
            continue
        best = max(inside) if breach == "above_maximum" else min(inside)
        if more_extreme(breach, peak, best):
            conn.execute("UPDATE alerts SET peak_value = ? WHERE id = ?", (best, alert_id))

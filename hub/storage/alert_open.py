"""Opening a fleet alert for an edge alert: the insert, its journal entry, the chattering
mark and the webhook event, in the caller's transaction. Shared by ingest (an edge alert
arrives) and the return of a sensor to service (an edge alert the hub held back while the
sensor was out of service, still active)."""

from __future__ import annotations

from hub.storage import alarm_marks
from hub.storage.alarm_marks import AlarmLimits
from hub.storage.alert_rows import announce, journal
from hub.storage.changelog import Actor
from hub.storage.severity import on_scale
from hub.storage.sqlbase import Conn
from shared.wire import WireAlert


def open_edge_alert(
    conn: Conn,
    gateway_id: int,
    factory_id: int,
    sensor_id: int,
    a: WireAlert,
    rule_id: int | None,
    *,
    opened_at: float,
    at: float,
    limits: AlarmLimits,
    actor: Actor,
    comment: str | None = None,
) -> int:
    """Insert the fleet alert of edge alert ``a`` (active, annunciated at ``opened_at``) and
    announce it; its id. Its severity is the edge's on the hub's one scale."""
    severity = on_scale(a.severity)
    alert_id = int(
        conn.execute(
            "INSERT INTO alerts (kind, gateway_id, factory_id, sensor_id, rule_id, "
            "edge_alert_id, breach_type, severity, state, opened_at, value, "
            "threshold_value, updated_at, peak_value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?) RETURNING id",
            (
                a.rule,
                gateway_id,
                factory_id,
                sensor_id,
                rule_id,
                a.id,
                a.breach_type,
                severity,
                opened_at,
                a.value,
                a.threshold_value,
                at,
                a.value,
            ),
        ).fetchone()[0]
    )
    journal(conn, alert_id, at, actor, "opened", severity=severity, comment=comment)
    alarm_marks.on_open(conn, alert_id, opened_at, at, limits)
    announce(conn, "alert.opened", alert_id, at, actor)
    return alert_id

"""Out of service (ISA-18.2 "removed from service"), as the alert concerns see it: which
sensors are out of service now, and what a sensor's going out of and coming back into
service does to its alerts, inside the caller's transaction.

A sensor is out of service while it has an open period of its own (``POST
/sensors/{id}/out-of-service``) or its machine has one (status MAINTENANCE or OFFLINE).
Facts the alarm report reads: ``service_periods`` (started_at, ended_at) and
``edge_alerts.suppressed`` (an edge alert the hub opened no alert for); the journal actions
``out_of_service`` and ``in_service`` on the alerts that were active meanwhile.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hub.storage import alarm_sources
from hub.storage.alarm_marks import AlarmLimits
from hub.storage.alert_rows import journal, reannounce
from hub.storage.changelog import Actor
from hub.storage.sqlbase import Conn, row_dict

OUT_STATUSES = ("MAINTENANCE", "OFFLINE")
BACK_IN_SERVICE = "back in service"
_PART = 500  # ids per IN (...) list


def out_of_service_sensors(conn: Conn, sensor_ids: Collection[int]) -> set[int]:
    """Those of ``sensor_ids`` that are out of service now (their own period or their
    machine's)."""
    ids = sorted(sensor_ids)
    found: set[int] = set()
    for i in range(0, len(ids), _PART):
        part = ids[i : i + _PART]
        marks = ", ".join("?" * len(part))
        rows = conn.execute(
            f"SELECT s.id FROM sensors s WHERE s.id IN ({marks}) AND EXISTS (SELECT 1 FROM "
            "service_periods p WHERE p.ended_at IS NULL AND (p.sensor_id = s.id "
            "OR p.machine_id = s.machine_id))",
            part,
        ).fetchall()
        found.update(int(r[0]) for r in rows)
    return found


def open_period(conn: Conn, column: str, ident: int) -> dict[str, Any] | None:
    """The open period of a sensor (``column`` "sensor_id") or a machine ("machine_id")."""
    assert column in ("sensor_id", "machine_id")
    cur = conn.execute(
        "SELECT id, started_at, token_id, role, by_kind, by_name, by_display, comment, "
        f"machine_status FROM service_periods WHERE {column} = ? AND ended_at IS NULL",
        (ident,),
    )
    row = cur.fetchone()
    return None if row is None else row_dict(cur, row)


def _active_alerts(conn: Conn, sensor_ids: Collection[int]) -> list[int]:
    ids = sorted(sensor_ids)
    out: list[int] = []
    for i in range(0, len(ids), _PART):
        part = ids[i : i + _PART]
        marks = ", ".join("?" * len(part))
        rows = conn.execute(
            f"SELECT id FROM alerts WHERE state = 'active' AND sensor_id IN ({marks}) ORDER BY id",
            part,
        ).fetchall()
        out.extend(int(r[0]) for r in rows)
    return out


def taken_out(
    conn: Conn, sensor_ids: Collection[int], actor: Actor, comment: str | None, at: float
) -> None:
    """Sensors that just went out of service: their active alerts are suppressed from now on
    (the join in hub.storage.alert_rows marks them); each journals who did it and why."""
    for alert_id in _active_alerts(conn, sensor_ids):
        journal(conn, alert_id, at, actor, "out_of_service", comment=comment)


def back_in_service(
    conn: Conn,
    sensor_ids: Collection[int],
    actor: Actor,
    comment: str | None,
    at: float,
    limits: AlarmLimits,
) -> None:
    """Sensors that just came back into service: each alert still active is journaled and
    announced again (as after a shelve); each edge alert the hub held back meanwhile that the
    edge still reports active is opened now, annunciated at ``at``."""
    for alert_id in _active_alerts(conn, sensor_ids):
        journal(conn, alert_id, at, actor, "in_service", comment=comment)
        reannounce(conn, alert_id, at, actor)
    ids = sorted(sensor_ids)
    for i in range(0, len(ids), _PART):
        part = ids[i : i + _PART]
        marks = ", ".join("?" * len(part))
        rows = conn.execute(
            "SELECT e.gateway_id, g.factory_id, e.sensor_id, e.alert_id, e.rule, e.breach_type, "
            "e.severity, e.threshold_value, e.value, e.opened_at, e.rule_id FROM edge_alerts e "
            f"JOIN gateways g ON g.id = e.gateway_id WHERE e.sensor_id IN ({marks}) "
            "AND e.suppressed = TRUE AND e.closed_at IS NULL AND e.alarm_id IS NULL "
            "ORDER BY e.opened_at, e.id",
            part,
        ).fetchall()
        for row in rows:
            gw, factory, sensor = row[:3]
            a = alarm_sources.source_of(row[3:])
            # One alarm per sensor: the first opens it, the others are its sources.
            alarm_sources.take(
                conn,
                int(gw),
                int(factory),
                int(sensor),
                a,
                opened_at=at,
                at=at,
                limits=limits,
                actor=actor,
                comment=BACK_IN_SERVICE,
            )


def machine_sensors(conn: Conn, machine_id: int) -> list[int]:
    rows = conn.execute("SELECT id FROM sensors WHERE machine_id = ?", (machine_id,)).fetchall()
    return [int(r[0]) for r in rows]

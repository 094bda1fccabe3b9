"""One alarm per sensor: the edge alerts of a sensor active at the same time are the sources
of ONE fleet alert (an alarm), whatever raised them (a threshold, a hub rule, a rate of change).

* An edge alert that arrives while its sensor has an active alarm joins it
  (``edge_alerts.alarm_id``) instead of opening a second one.
* The alarm's severity is that of its most severe active source, on the one scale
  (hub.storage.severity); its ``kind``, ``rule_id``, ``breach_type`` and ``threshold_value``
  are those of the source that decides it. A source that raises it journals ``escalated``
  naming the source; a source that joins without raising it journals ``source_opened``; a
  source that clears while others stay active journals ``de-escalated`` when the severity
  falls, else ``source_cleared``.
* An escalation asks for attention anew (ISA-18.2): an acknowledged alarm is unacknowledged
  (journaled ``unacknowledged``) and the alarm is announced as ``alert.opened`` with
  ``escalated`` true. A de-escalation announces nothing.
* The alarm clears when its last active source clears.

Everything happens in the caller's transaction (a sync batch, or a sensor's return to service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage import alarm_marks, alarm_peaks
from hub.storage.alarm_marks import AlarmLimits
from hub.storage.alert_open import open_edge_alert
from hub.storage.alert_rows import announce, journal, rule_of
from hub.storage.changelog import Actor
from hub.storage.severity import on_scale, rank
from hub.storage.sqlbase import Conn
from shared.wire import WireAlert

_SOURCE_COLUMNS = (
    "gateway_id, alert_id, rule, breach_type, severity, threshold_value, value, opened_at, rule_id"
)


@dataclass(frozen=True, slots=True)
class Prior:
    """An edge alert as the hub had it before this batch: linked to an alarm, closed."""

    alarm_id: int | None
    closed: bool


def priors(conn: Conn, gateway_id: int, edge_ids: list[int]) -> dict[int, Prior]:
    """The batch's edge alerts the hub already had (read before the batch's upsert)."""
    found: dict[int, Prior] = {}
    for i in range(0, len(edge_ids), 500):
        part = edge_ids[i : i + 500]
        marks = ", ".join("?" * len(part))
        for alert_id, alarm_id, closed_at in conn.execute(
            "SELECT alert_id, alarm_id, closed_at FROM edge_alerts "
            f"WHERE gateway_id = ? AND alert_id IN ({marks})",
            (gateway_id, *part),
        ).fetchall():
            found[int(alert_id)] = Prior(
                None if alarm_id is None else int(alarm_id), closed_at is not None
            )
    return found


def describe(rule_id: int | None, a: WireAlert) -> str:
    """A source as the journal names it: what fired, and the grade the edge gave it."""
    if a.rule == "rule":
        what = f"rule #{rule_id}" if rule_id is not None else "rule"
        return f"{what} {a.breach_type} {a.threshold_value:g} ({a.severity})"
    if a.rule == "rate_of_change":
        return f"rate_of_change {a.threshold_value:g}/s ({a.severity} at the edge)"
    return f"threshold {a.breach_type} {a.threshold_value:g} ({a.severity} at the edge)"


def _link(conn: Conn, gateway_id: int, edge_id: int, alarm_id: int) -> None:
    conn.execute(
        "UPDATE edge_alerts SET alarm_id = ? WHERE gateway_id = ? AND alert_id = ?",
        (alarm_id, gateway_id, edge_id),
    )


def _active_alarm(conn: Conn, sensor_id: int) -> int | None:
    row = conn.execute(
        "SELECT id FROM alerts WHERE sensor_id = ? AND state = 'active' "
        "AND kind <> 'gateway_offline' ORDER BY opened_at, id LIMIT 1",
        (sensor_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def take(
    conn: Conn,
    gateway_id: int,
    factory_id: int,
    sensor_id: int,
    a: WireAlert,
    *,
    opened_at: float,
    at: float,
    limits: AlarmLimits,
    actor: Actor,
    comment: str | None = None,
) -> int:
    """Edge alert ``a`` (stored in ``edge_alerts``, linked to no alarm yet) becomes a source:
    of the sensor's active alarm, or of a new one annunciated at ``opened_at``; the alarm's id.
    The caller applies ``a``'s clear, if it carries one, with :func:`settle`."""
    rule_id = rule_of(conn, sensor_id, a)
    alarm_id = _active_alarm(conn, sensor_id)
    if alarm_id is None:
        alarm_id = open_edge_alert(
            conn,
            gateway_id,
            factory_id,
            sensor_id,
            a,
            rule_id,
            opened_at=opened_at,
            at=at,
            limits=limits,
            actor=actor,
            comment=comment,
        )
        _link(conn, gateway_id, a.id, alarm_id)
        return alarm_id
    _link(conn, gateway_id, a.id, alarm_id)
    severity = str(
        conn.execute("SELECT severity FROM alerts WHERE id = ?", (alarm_id,)).fetchone()[0]
    )
    if a.closed_at is None and rank(a.severity) > rank(severity):
        _escalate(conn, alarm_id, sensor_id, a, rule_id, at, actor)
    else:
        journal(
            conn,
            alarm_id,
            at,
            actor,
            "source_opened",
            severity=on_scale(a.severity),
            comment=describe(rule_id, a),
        )
    return alarm_id


def _decide(conn: Conn, alarm_id: int, a: WireAlert, rule_id: int | None) -> None:
    """The alarm takes ``a``'s severity and identity (the source that decides it now)."""
    conn.execute(
        "UPDATE alerts SET severity = ?, kind = ?, rule_id = ?, breach_type = ?, "
        "threshold_value = ?, value = ? WHERE id = ?",
        (
            on_scale(a.severity),
            a.rule,
            rule_id,
            a.breach_type,
            a.threshold_value,
            a.value,
            alarm_id,
        ),
    )


def _escalate(
    conn: Conn,
    alarm_id: int,
    sensor_id: int,
    a: WireAlert,
    rule_id: int | None,
    at: float,
    actor: Actor,
) -> None:
    _decide(conn, alarm_id, a, rule_id)
    conn.execute("UPDATE alerts SET updated_at = ? WHERE id = ?", (at, alarm_id))
    alarm_peaks.note_value(conn, alarm_id, a.value)
    severity = on_scale(a.severity)
    journal(conn, alarm_id, at, actor, "escalated", severity=severity, comment=describe(rule_id, a))
    unacked = conn.execute(
        "UPDATE alerts SET acknowledged = FALSE, acknowledged_at = NULL, acknowledged_by = NULL, "
        "acknowledged_role = NULL, acknowledged_kind = NULL, acknowledged_name = NULL, "
        "acknowledged_display = NULL WHERE id = ? AND acknowledged = TRUE",
        (alarm_id,),
    ).rowcount
    if unacked:
        # ISA-18.2: a higher priority is a new demand on the operator, acknowledged anew.
        journal(conn, alarm_id, at, actor, "unacknowledged", severity=severity)
    announce(conn, "alert.opened", alarm_id, at, actor, escalated=True)


def source_of(row: Sequence[Any]) -> WireAlert:
    """The edge alert in ``row``: the columns of ``_SOURCE_COLUMNS`` after ``gateway_id``."""
    edge_id, rule, breach, severity, threshold, value, opened, rid = row
    return WireAlert(
        id=int(edge_id),
        key="",
        rule=str(rule),
        breach_type=str(breach),
        severity=str(severity),
        threshold_value=float(threshold),
        value=float(value),
        opened_at=float(opened),
        rule_id=None if rid is None else int(rid),
    )


def _top_source(conn: Conn, alarm_id: int) -> tuple[int, WireAlert] | None:
    """The alarm's most severe active source (the earliest of equals) with its gateway, or
    None."""
    best: tuple[int, WireAlert] | None = None
    for row in conn.execute(
        f"SELECT {_SOURCE_COLUMNS} FROM edge_alerts WHERE alarm_id = ? AND closed_at IS NULL "
        "ORDER BY opened_at, id",
        (alarm_id,),
    ).fetchall():
        source = source_of(row[1:])
        if best is None or rank(source.severity) > rank(best[1].severity):
            best = (int(row[0]), source)
    return best


def settle(
    conn: Conn,
    alarm_id: int,
    gateway_id: int,
    sensor_id: int,
    a: WireAlert,
    *,
    was_closed: bool,
    at: float,
    limits: AlarmLimits,
    actor: Actor,
) -> None:
    """Source ``a`` of active alarm ``alarm_id`` changed (its severity, value or clear, as
    ``edge_alerts`` now holds it): the alarm follows. ``was_closed``: the hub had its clear
    already (a re-send changes nothing)."""
    if was_closed:
        return
    row = conn.execute(
        "SELECT state, severity, kind, rule_id, value, breach_type FROM alerts WHERE id = ?",
        (alarm_id,),
    ).fetchone()
    state, severity, kind, current_rule, value, breach = row
    if state != "active":
        return  # a cleared alarm stays cleared, whatever a late re-send says
    rule_id = rule_of(conn, sensor_id, a)
    if a.closed_at is not None:
        _source_cleared(conn, alarm_id, sensor_id, a, rule_id, str(severity), at, limits, actor)
        return
    found = _top_source(conn, alarm_id)
    if found is None:
        return
    top_gateway, top = found
    if rank(top.severity) > rank(severity):
        _escalate(conn, alarm_id, sensor_id, a, rule_id, at, actor)
    elif rank(top.severity) < rank(severity):
        _de_escalate(conn, alarm_id, sensor_id, top, at, actor)
    elif (
        (top_gateway, top.id) == (gateway_id, a.id)
        and a.rule == kind
        and (a.value != value or (rule_id is not None and rule_id != current_rule))
    ):
        # The deciding source moved within its level: its latest value (and the rule of
        # that level now firing, the edge names it) is the alarm's.
        conn.execute(
            "UPDATE alerts SET value = ?, rule_id = coalesce(?, rule_id), "
            "threshold_value = ?, updated_at = ? WHERE id = ?",
            (a.value, rule_id, a.threshold_value, at, alarm_id),
        )
    if a.breach_type == breach:
        alarm_peaks.note_value(conn, alarm_id, a.value)


def _de_escalate(
    conn: Conn,
    alarm_id: int,
    sensor_id: int,
    top: WireAlert,
    at: float,
    actor: Actor,
    cleared: str | None = None,
) -> None:
    """The alarm falls to the level of its now most severe source ``top``; ``cleared``
    names the source whose clear brought that about, if one did."""
    top_rule = rule_of(conn, sensor_id, top)
    _decide(conn, alarm_id, top, top_rule)
    conn.execute("UPDATE alerts SET updated_at = ? WHERE id = ?", (at, alarm_id))
    why = describe(top_rule, top)
    journal(
        conn,
        alarm_id,
        at,
        actor,
        "de-escalated",
        severity=on_scale(top.severity),
        comment=why if cleared is None else f"{cleared} cleared; {why} stays",
    )


def _source_cleared(
    conn: Conn,
    alarm_id: int,
    sensor_id: int,
    a: WireAlert,
    rule_id: int | None,
    severity: str,
    at: float,
    limits: AlarmLimits,
    actor: Actor,
) -> None:
    assert a.closed_at is not None
    found = _top_source(conn, alarm_id)
    if found is None:
        # The last source cleared: so does the alarm. A clear stamped before the open (the
        # readings came out of order) took no time.
        conn.execute(
            "UPDATE alerts SET state = 'cleared', cleared_at = CASE WHEN opened_at > ? "
            "THEN opened_at ELSE ? END, updated_at = ? WHERE id = ?",
            (a.closed_at, a.closed_at, at, alarm_id),
        )
        journal(conn, alarm_id, at, actor, "cleared", severity=severity)
        alarm_marks.on_clear(conn, alarm_id, max(a.closed_at, a.opened_at), at, limits)
        announce(conn, "alert.cleared", alarm_id, at, actor)
        return
    top = found[1]
    if rank(top.severity) < rank(severity):
        _de_escalate(conn, alarm_id, sensor_id, top, at, actor, cleared=describe(rule_id, a))
    else:
        journal(
            conn,
            alarm_id,
            at,
            actor,
            "source_cleared",
            severity=severity,
            comment=describe(rule_id, a),
        )

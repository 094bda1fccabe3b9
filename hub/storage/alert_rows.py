"""What the alert concerns share: who acts, the filter of a list, an alert row as the API
shows it, and the writes that go with every transition inside its transaction (the journal,
the webhook outbox, the change log)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from hub.storage.changelog import Actor, AuditEntry, actor_of, write_entry
from hub.storage.severity import NAMES, rank
from hub.storage.sqlbase import Conn, row_dict
from shared.wire import WireAlert

log = structlog.get_logger("hub.storage.alerts")

ALERT_COLUMNS = (
    "a.id, a.kind, a.gateway_id AS gateway_row, g.name AS gateway_id, a.factory_id, "
    "a.sensor_id, a.rule_id, a.edge_alert_id, a.breach_type, a.severity, a.state, "
    "a.acknowledged, a.acknowledged_at, a.acknowledged_by, a.acknowledged_role, "
    "a.acknowledged_kind, a.acknowledged_name, a.acknowledged_display, "
    "a.shelved_until, a.opened_at, a.cleared_at, a.value, a.threshold_value, a.updated_at, "
    "a.chattering, a.chattering_at, a.stale, a.stale_at, a.peak_value, "
    "sp.started_at AS out_of_service_at, sp.token_id AS out_of_service_token, "
    "sp.role AS out_of_service_role, sp.by_kind AS out_of_service_kind, "
    "sp.by_name AS out_of_service_name, sp.by_display AS out_of_service_display, "
    "sp.comment AS out_of_service_comment, "
    "sp.machine_status AS out_of_service_machine_status"
)
# The period that holds an alert's sensor out of service now, if any: the sensor's own or
# its machine's (the earlier one when both), so the alert object says who set it and when.
SERVICE_JOIN = (
    " LEFT JOIN service_periods sp ON sp.id = (SELECT p.id FROM service_periods p "
    "WHERE p.ended_at IS NULL AND (p.sensor_id = a.sensor_id OR p.machine_id = "
    "(SELECT s.machine_id FROM sensors s WHERE s.id = a.sensor_id)) "
    "ORDER BY p.started_at, p.id LIMIT 1)"
)
ALERT_SELECT = (
    f"SELECT {ALERT_COLUMNS} FROM alerts a JOIN gateways g ON g.id = a.gateway_id" + SERVICE_JOIN
)
# Escalated / de-escalated, worst severity: every name a severity may have, on the one scale.
SEVERITY_RANK = {name: rank(name) for name in NAMES}
GATEWAY_OFFLINE_SEVERITY = "warning"


def gateway(name: str | None) -> Actor:
    """A gateway as the actor of what its sync brought (opened, escalated, cleared)."""
    return Actor(None, "gateway", "gateway", name)


def gateway_name(conn: Conn, gateway_id: int) -> str | None:
    row = conn.execute("SELECT name FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True, slots=True)
class AlertFilter:
    state: str | None = None
    acknowledged: bool | None = None
    severity: str | None = None
    kind: str | None = None
    factory_id: int | None = None
    gateway: str | None = None  # the gateway's name (the API's gateway id)
    sensor_id: int | None = None
    factories: frozenset[int] | None = None  # a scoped caller's factories; None: all
    machine_id: int | None = None
    shelved: bool | None = None  # shelved now (shelved_until in the future) or not


def alert_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "acknowledged": bool(row["acknowledged"]),
        "chattering": bool(row["chattering"]),
        "stale": bool(row["stale"]),
    }


JOURNAL_COLUMNS = "at, token_id, role, by_kind, by_name, by_display, action, severity, comment"


def journal_total(conn: Conn, alert_id: int) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM alert_journal WHERE alert_id = ?", (alert_id,)
        ).fetchone()[0]
    )


def one_alert(conn: Conn, alert_id: int) -> dict[str, Any] | None:
    cur = conn.execute(ALERT_SELECT + " WHERE a.id = ?", (alert_id,))
    row = cur.fetchone()
    return None if row is None else alert_row(row_dict(cur, row))


def journal(
    conn: Conn,
    alert_id: int,
    at: float,
    actor: Actor,
    action: str,
    *,
    severity: str | None = None,
    comment: str | None = None,
) -> None:
    who = actor_of(actor)
    conn.execute(
        "INSERT INTO alert_journal (alert_id, at, token_id, role, by_kind, by_name, by_display, "
        "action, severity, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert_id,
            at,
            who.token_id,
            who.role,
            who.kind,
            who.name,
            who.display,
            action,
            severity,
            comment,
        ),
    )


def audit_transition(
    conn: Conn, actor: Actor, action: str, alert_id: int, detail: dict[str, Any], at: float
) -> None:
    """A person's transition also goes to the change log (invariant 9), in its transaction."""
    write_entry(conn, AuditEntry(actor, action, "alert", str(alert_id), detail), at)


def by_of(actor: Actor) -> dict[str, Any]:
    """``by`` of a webhook event: who caused it, as journal entries and audit rows name it."""
    who = actor_of(actor)
    return {
        "kind": who.kind,
        "name": who.name,
        "display": who.display,
        "role": who.role,
        "token_id": who.token_id,
    }


def announce(
    conn: Conn,
    event: str,
    alert_id: int,
    at: float,
    by: Actor,
    *,
    reannounced: bool = False,
    escalated: bool = False,
) -> bool:
    """Queue a webhook event with the alert as it is now and who caused it (inside the
    changing transaction); False when the alert is silenced (shelved, or its sensor out of
    service): its transition is journaled, not announced, and :func:`reannounce` tells the
    receivers once the silence is over. An escalation is announced as opened again, with
    ``escalated``: the alarm asks for attention (and acknowledgement) anew."""
    alert = one_alert(conn, alert_id)
    if alert is None or silenced(alert, at):
        return False
    payload = {**alert, "reannounced": reannounced, "escalated": escalated, "by": by_of(by)}
    conn.execute(
        "INSERT INTO alert_events (event_id, event, alert_id, at, payload) VALUES (?, ?, ?, ?, ?)",
        (str(uuid.uuid4()), event, alert_id, at, json.dumps(payload, separators=(",", ":"))),
    )
    return True


def silenced(alert: dict[str, Any], at: float) -> bool:
    """ISA-18.2: a shelved alert, or one of a sensor out of service, is not annunciated."""
    if alert.get("out_of_service_at") is not None:
        return True
    until = alert["shelved_until"]
    return until is not None and float(until) > at


def reannounce(conn: Conn, alert_id: int, at: float, by: Actor) -> bool:
    """A silence is over: an alert still active is announced again, once, as opened (with
    ``reannounced``), since its receivers may have missed every change meanwhile."""
    alert = one_alert(conn, alert_id)
    if alert is None or alert["state"] != "active":
        return False
    return announce(conn, event_of(alert["kind"], "opened"), alert_id, at, by, reannounced=True)


def event_of(kind: str, what: str) -> str:
    if kind == "gateway_offline":
        return "gateway.offline" if what == "opened" else "gateway.online"
    return f"alert.{what}"


def rule_of(conn: Conn, sensor_id: int, a: WireAlert) -> int | None:
    """The hub rule behind an edge "rule" alert (None for other kinds): the one the edge names
    when it is a rule of that sensor; else (an agent from before ``rule_id``, or a rule
    deleted or moved since it fired: logged) the one :func:`rule_id_for` infers."""
    if a.rule != "rule":
        return None
    if a.rule_id is not None:
        found = conn.execute(
            "SELECT 1 FROM alert_rules WHERE id = ? AND sensor_id = ?", (a.rule_id, sensor_id)
        ).fetchone()
        if found is not None:
            return a.rule_id
        log.warning(
            "edge alert names a rule that is not one of its sensor's; inferring the rule",
            edge_alert_id=a.id,
            sensor_id=sensor_id,
            rule_id=a.rule_id,
        )
    return rule_id_for(conn, sensor_id, a)


def rule_id_for(conn: Conn, sensor_id: int, a: WireAlert) -> int | None:
    """The hub rule behind an edge "rule" alert that does not name it (agents from before
    ``rule_id``): the level it names (severity and the threshold it crossed) is looked up
    among the sensor's rules, the first of two alike."""
    rows = conn.execute(
        "SELECT id, threshold, threshold_high FROM alert_rules "
        "WHERE sensor_id = ? AND severity = ? AND enabled = TRUE ORDER BY id",
        (sensor_id, a.severity.upper()),
    ).fetchall()
    for rid, lo, hi in rows:
        if a.threshold_value in (lo, hi):
            return int(rid)
    return int(rows[0][0]) if rows else None

"""The fleet's alerts: edge alerts turned into lifecycle rows at ingest, gateway offline, the
operators' transitions (ack, shelve, unshelve), the journal, and the webhook outbox.

Every transition changes the alert, appends to ``alert_journal`` and (for the events webhooks
can subscribe to) to ``alert_events`` in ONE transaction: a webhook never announces a change
that was rolled back, and no change goes unannounced. The sender (hub.notify) reads the
outbox later, so ingest never waits on a webhook.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from hub.storage import alarm_marks, alarm_peaks, alarm_sources
from hub.storage.alarm_marks import AlarmLimits
from hub.storage.alarm_sources import Prior
from hub.storage.alert_rows import (
    ALERT_SELECT,
    JOURNAL_COLUMNS,
    AlertFilter,
    alert_row,
    announce,
    audit_transition,
    gateway,
    journal,
    journal_total,
    one_alert,
    reannounce,
)
from hub.storage.changelog import SYSTEM, Actor, actor_of
from hub.storage.dialect import Dialect
from hub.storage.model import Conflict
from hub.storage.selects import within
from hub.storage.service_rows import out_of_service_sensors
from hub.storage.severity import on_scale
from hub.storage.sqlbase import Conn, Database, dicts
from shared.timeutil import now
from shared.wire import WireAlert, WireReading

__all__ = ["Actor", "AlertFilter", "Alerts"]


class Alerts:
    """The fleet's alerts and their lifecycle. Ingest hands each batch's edge alerts and the
    gateway's sync to :meth:`record_edge_alerts` and :meth:`gateway_synced`, inside the
    batch's own transaction."""

    def __init__(self, db: Database, dialect: Dialect) -> None:
        self._db = db
        self._dialect = dialect
        # [alarms] of hub.toml; the hub sets it at start (hub.cli.serve).
        self.limits = AlarmLimits()

    # -- ingest: edge alerts become fleet alerts -----------------------------------------

    def record_edge_alerts(
        self, conn: Conn, gateway_id: int, ids: dict[str, int], alerts: Sequence[WireAlert]
    ) -> None:
        """A batch's edge alerts, as the edge sent them and as fleet alerts (in ``conn``'s
        transaction; ``ids``: sensor id by key)."""
        self.hold_alarms(conn, {ids[a.key] for a in alerts})
        prior = alarm_sources.priors(conn, gateway_id, sorted({a.id for a in alerts}))
        self.upsert_edge_alerts(conn, gateway_id, ids, alerts)
        at = now()
        factory, name = conn.execute(
            "SELECT factory_id, name FROM gateways WHERE id = ?", (gateway_id,)
        ).fetchone()
        by = gateway(str(name))
        held_back = out_of_service_sensors(conn, {ids[a.key] for a in alerts})
        for a in alerts:
            self._fleet_alert(
                conn, gateway_id, int(factory), ids[a.key], a, prior.get(a.id), at, by, held_back
            )

    def hold_alarms(self, conn: Conn, sensor_ids: Collection[int]) -> None:
        """Before deciding, in ``conn``'s write transaction, whether an edge alert of any of
        ``sensor_ids`` opens an alarm or joins the sensor's active one: no other transaction
        decides that for these sensors until this one commits (the engine's ``hold_alarms``)."""
        self._dialect.hold_alarms(conn, sensor_ids)

    def track_peaks(
        self,
        conn: Conn,
        gateway_id: int,
        ids: dict[str, int],
        readings: Sequence[WireReading],
        alerts: Sequence[WireAlert],
    ) -> None:
        """Raise the peak values of the alerts the batch's readings fall in (in ``conn``'s
        transaction, after :meth:`record_edge_alerts`)."""
        alarm_peaks.track_readings(conn, gateway_id, ids, readings, alerts)

    def upsert_edge_alerts(
        self, conn: Conn, gateway_id: int, ids: dict[str, int], alerts: Sequence[WireAlert]
    ) -> None:
        received = now()
        # A close never reopens, and a late "open" never erases a close.
        conn.executemany(
            "INSERT INTO edge_alerts (gateway_id, alert_id, sensor_id, rule, breach_type, "
            "severity, threshold_value, value, opened_at, closed_at, reading_seq, "
            "received_at, rule_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (gateway_id, alert_id) DO UPDATE SET "
            "rule_id = CASE WHEN edge_alerts.closed_at IS NULL "
            "THEN excluded.rule_id ELSE edge_alerts.rule_id END, "
            "severity = CASE WHEN edge_alerts.closed_at IS NULL "
            "THEN excluded.severity ELSE edge_alerts.severity END, "
            "value = CASE WHEN edge_alerts.closed_at IS NULL "
            "THEN excluded.value ELSE edge_alerts.value END, "
            "closed_at = coalesce(edge_alerts.closed_at, excluded.closed_at)",
            [
                (
                    gateway_id,
                    a.id,
                    ids[a.key],
                    a.rule,
                    a.breach_type,
                    a.severity,
                    a.threshold_value,
                    a.value,
                    a.opened_at,
                    # A clear stamped before the open (readings out of order) took no time.
                    None if a.closed_at is None else max(a.closed_at, a.opened_at),
                    a.reading_seq,
                    received,
                    a.rule_id,
                )
                for a in alerts
            ],
        )

    def _fleet_alert(
        self,
        conn: Conn,
        gateway_id: int,
        factory: int,
        sensor_id: int,
        a: WireAlert,
        prior: Prior | None,
        at: float,
        by: Actor,
        held_back: set[int],
    ) -> None:
        """Edge alert ``a`` as a source of its sensor's one alarm (hub.storage.alarm_sources)."""
        alarm_id = None if prior is None else prior.alarm_id
        if alarm_id is None:
            if prior is not None and prior.closed:
                return  # cleared at the edge before the hub took it (held back): nothing
            if sensor_id in held_back:
                # Out of service: no alert at the hub; the edge's record says it was held
                # back, and a return to service opens it if the edge still has it active.
                conn.execute(
                    "UPDATE edge_alerts SET suppressed = TRUE "
                    "WHERE gateway_id = ? AND alert_id = ?",
                    (gateway_id, a.id),
                )
                return
            alarm_id = alarm_sources.take(
                conn,
                gateway_id,
                factory,
                sensor_id,
                a,
                opened_at=a.opened_at,
                at=at,
                limits=self.limits,
                actor=by,
            )
        was_closed = prior is not None and prior.closed
        alarm_sources.settle(
            conn,
            alarm_id,
            gateway_id,
            sensor_id,
            a,
            was_closed=was_closed,
            at=at,
            limits=self.limits,
            actor=by,
        )

    # -- read ----------------------------------------------------------------------------

    def list_alerts(
        self, where: AlertFilter, offset: int, limit: int, at: float | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(one page of alerts newest first, how many match in all)."""
        clauses: list[str] = []
        params: list[Any] = []
        simple: Mapping[str, Any] = {
            "a.state": where.state,
            "a.kind": where.kind,
            "a.factory_id": where.factory_id,
            "g.name": where.gateway,
            "a.sensor_id": where.sensor_id,
        }
        for column, value in simple.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.acknowledged is not None:
            clauses.append("a.acknowledged = ?")
            params.append(where.acknowledged)
        if where.severity is not None:
            # An edge grade asked for (medium, high) means its place on the one scale.
            clauses.append("a.severity = ?")
            params.append(on_scale(where.severity))
        if where.factories is not None:
            condition, ids = within("a.factory_id", where.factories)
            clauses.append(condition)
            params.extend(ids)
        if where.machine_id is not None:
            clauses.append("a.sensor_id IN (SELECT id FROM sensors WHERE machine_id = ?)")
            params.append(where.machine_id)
        if where.shelved is not None:
            shelved = "(a.shelved_until IS NOT NULL AND a.shelved_until > ?)"
            clauses.append(shelved if where.shelved else f"NOT {shelved}")
            params.append(now() if at is None else at)
        sql_where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._db.reader(snapshot=True) as conn:
            total = int(
                conn.execute(
                    "SELECT count(*) FROM alerts a JOIN gateways g ON g.id = a.gateway_id"
                    + sql_where,
                    params,
                ).fetchone()[0]
            )
            rows = dicts(
                conn.execute(
                    ALERT_SELECT
                    + sql_where
                    + " ORDER BY a.opened_at DESC, a.id DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return [alert_row(r) for r in rows], total

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._db.reader() as conn:
            return one_alert(conn, alert_id)

    def alert_journal(self, alert_id: int) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            f"SELECT {JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )

    def journal_page(
        self, alert_id: int, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """(``limit`` journal entries from ``offset``, oldest first; how many in all)."""
        with self._db.reader(snapshot=True) as conn:
            total = journal_total(conn, alert_id)
            rows = dicts(
                conn.execute(
                    f"SELECT {JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? "
                    "ORDER BY id LIMIT ? OFFSET ?",
                    (alert_id, limit, offset),
                )
            )
        return rows, total

    def journal_tail(self, alert_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(the newest ``limit`` journal entries, oldest first; how many in all)."""
        with self._db.reader(snapshot=True) as conn:
            total = journal_total(conn, alert_id)
            rows = dicts(
                conn.execute(
                    f"SELECT {JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (alert_id, limit),
                )
            )
        return rows[::-1], total

    def active_edge_alerts(self, gateway_id: int, edge_ids: Sequence[int]) -> dict[int, float]:
        """Of the gateway's alert ids ``edge_ids``, those the hub holds active (open sources
        of an active alarm), with the opened_at it has for each."""
        found: dict[int, float] = {}
        with self._db.reader() as conn:
            for i in range(0, len(edge_ids), 500):
                part = list(edge_ids[i : i + 500])
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    "SELECT e.alert_id, e.opened_at FROM edge_alerts e "
                    "JOIN alerts a ON a.id = e.alarm_id WHERE e.gateway_id = ? "
                    "AND a.state = 'active' AND e.closed_at IS NULL "
                    f"AND e.alert_id IN ({marks})",
                    (gateway_id, *part),
                ).fetchall()
                found.update((int(r[0]), float(r[1])) for r in rows)
        return found

    # -- operators' transitions ----------------------------------------------------------

    def acknowledge_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """Acknowledge; None: no such alert; Conflict: acknowledged already."""
        at = now()
        with self._db.write() as conn:
            if one_alert(conn, alert_id) is None:
                return None
            who = actor_of(actor)
            changed = conn.execute(
                "UPDATE alerts SET acknowledged = TRUE, acknowledged_at = ?, acknowledged_by = ?, "
                "acknowledged_role = ?, acknowledged_kind = ?, acknowledged_name = ?, "
                "acknowledged_display = ?, updated_at = ? WHERE id = ? AND acknowledged = FALSE",
                (at, who.token_id, who.role, who.kind, who.name, who.display, at, alert_id),
            ).rowcount
            if not changed:
                raise Conflict(f"alert {alert_id} is acknowledged already")
            journal(conn, alert_id, at, actor, "acknowledged", comment=comment)
            audit_transition(conn, actor, "alert.ack", alert_id, {"comment": comment}, at)
            announce(conn, "alert.acknowledged", alert_id, at, actor)
            return one_alert(conn, alert_id)

    def shelve_alert(
        self, alert_id: int, actor: Actor, until: float, comment: str | None
    ) -> dict[str, Any] | None:
        """Shelve until ``until`` (a later shelve replaces the time); Conflict: cleared."""
        at = now()
        with self._db.write() as conn:
            alert = one_alert(conn, alert_id)
            if alert is None:
                return None
            if alert["state"] != "active":
                raise Conflict(f"alert {alert_id} is cleared; only an active alert is shelved")
            conn.execute(
                "UPDATE alerts SET shelved_until = ?, updated_at = ? WHERE id = ?",
                (until, at, alert_id),
            )
            journal(conn, alert_id, at, actor, "shelved", comment=comment)
            detail = {"until": until, "comment": comment}
            audit_transition(conn, actor, "alert.shelve", alert_id, detail, at)
            return one_alert(conn, alert_id)

    def unshelve_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """Unshelve; Conflict: not shelved (or its shelve ran out already)."""
        at = now()
        with self._db.write() as conn:
            if one_alert(conn, alert_id) is None:
                return None
            changed = conn.execute(
                "UPDATE alerts SET shelved_until = NULL, updated_at = ? "
                "WHERE id = ? AND shelved_until > ?",
                (at, alert_id, at),
            ).rowcount
            if not changed:
                raise Conflict(f"alert {alert_id} is not shelved")
            journal(conn, alert_id, at, actor, "unshelved", comment=comment)
            audit_transition(conn, actor, "alert.unshelve", alert_id, {"comment": comment}, at)
            reannounce(conn, alert_id, at, actor)
            return one_alert(conn, alert_id)

    def expire_shelves(self, at: float | None = None) -> int:
        """Journal the shelves that ran out (reads treat them as unshelved already) and announce
        again those of them still active."""
        at = now() if at is None else at
        if not self._db.fetchone("SELECT 1 FROM alerts WHERE shelved_until <= ? LIMIT 1", (at,)):
            return 0
        with self._db.write() as conn:
            rows = conn.execute(
                "UPDATE alerts SET shelved_until = NULL, updated_at = ? "
                "WHERE shelved_until <= ? RETURNING id",
                (at, at),
            ).fetchall()
            for (alert_id,) in rows:
                journal(conn, int(alert_id), at, SYSTEM, "shelve_expired")
                reannounce(conn, int(alert_id), at, SYSTEM)
        return len(rows)

    def mark_stale(self, at: float | None = None) -> int:
        """Mark the alerts active longer than ``[alarms] stale_after_s`` stale (journaled)."""
        at = now() if at is None else at
        with self._db.write() as conn:
            return alarm_marks.mark_stale(conn, at, self.limits)

    def edge_alerts(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            "SELECT a.alert_id, g.name AS gateway_id, a.rule, a.breach_type, a.severity, "
            "a.threshold_value, a.value, a.opened_at, a.closed_at, a.reading_seq "
            "FROM edge_alerts a JOIN gateways g ON g.id = a.gateway_id "
            "WHERE a.sensor_id = ? ORDER BY a.opened_at DESC, a.id DESC LIMIT ?",
            (sensor_id, limit),
        )

    # -- a sensor's deletion -------------------------------------------------------------

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int]:
        """A sensor's alerts with their journal, and its edge alerts (in ``conn``'s
        transaction)."""
        removed: dict[str, int] = {}
        cur = conn.execute(
            "DELETE FROM alert_journal WHERE alert_id IN "
            "(SELECT id FROM alerts WHERE sensor_id = ?)",
            (sensor_id,),
        )
        removed["alert_journal"] = max(cur.rowcount, 0)
        for table in ("alerts", "edge_alerts"):
            cur = conn.execute(f"DELETE FROM {table} WHERE sensor_id = ?", (sensor_id,))
            removed[table] = max(cur.rowcount, 0)
        return removed

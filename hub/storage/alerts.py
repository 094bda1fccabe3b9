"""The fleet's alerts: edge alerts turned into lifecycle rows at ingest, gateway offline, the
operators' transitions (ack, shelve, unshelve), the journal, and the webhook outbox.

Every transition changes the alert, appends to ``alert_journal`` and (for the events webhooks
can subscribe to) to ``alert_events`` in ONE transaction: a webhook never announces a change
that was rolled back, and no change goes unannounced. The sender (hub.notify) reads the
outbox later, so ingest never waits on a webhook.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage.audit import AuditEntry, write_entry
from hub.storage.ingest import IngestMixin
from hub.storage.model import SEQ_BITS, Conflict
from hub.storage.rules import RulesMixin
from hub.storage.sqlbase import Conn, dicts, row_dict
from shared.timeutil import now
from shared.wire import WireAlert

ALERT_COLUMNS = (
    "a.id, a.kind, a.gateway_id AS gateway_row, g.name AS gateway_id, a.factory_id, "
    "a.sensor_id, a.rule_id, a.edge_alert_id, a.breach_type, a.severity, a.state, "
    "a.acknowledged, a.acknowledged_at, a.acknowledged_by, a.acknowledged_role, "
    "a.shelved_until, a.opened_at, a.cleared_at, a.value, a.threshold_value, a.updated_at"
)
_SELECT = f"SELECT {ALERT_COLUMNS} FROM alerts a JOIN gateways g ON g.id = a.gateway_id"
# Escalated / de-escalated: the edge's scaled severities and the rules' levels on one scale.
SEVERITY_RANK = {"info": 0, "medium": 1, "warning": 1, "high": 2, "critical": 3}
GATEWAY_OFFLINE_SEVERITY = "warning"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a transition: a token (id and role), or the hub itself (role "system")."""

    token_id: int | None
    role: str


SYSTEM = Actor(None, "system")
GATEWAY = Actor(None, "gateway")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    state: str | None = None
    acknowledged: bool | None = None
    severity: str | None = None
    kind: str | None = None
    factory_id: int | None = None
    gateway: str | None = None  # the gateway's name (the API's gateway id)
    sensor_id: int | None = None


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "acknowledged": bool(row["acknowledged"])}


_JOURNAL_COLUMNS = "at, token_id, role, action, severity, comment"


def _journal_total(conn: Conn, alert_id: int) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM alert_journal WHERE alert_id = ?", (alert_id,)
        ).fetchone()[0]
    )


def _one(conn: Conn, alert_id: int) -> dict[str, Any] | None:
    cur = conn.execute(_SELECT + " WHERE a.id = ?", (alert_id,))
    row = cur.fetchone()
    return None if row is None else _alert(row_dict(cur, row))


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
    conn.execute(
        "INSERT INTO alert_journal (alert_id, at, token_id, role, action, severity, comment) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (alert_id, at, actor.token_id, actor.role, action, severity, comment),
    )


def _audit(
    conn: Conn, actor: Actor, action: str, alert_id: int, detail: dict[str, Any], at: float
) -> None:
    """A person's transition also goes to the change log (invariant 9), in its transaction."""
    write_entry(conn, AuditEntry(actor, action, "alert", str(alert_id), detail), at)


def announce(conn: Conn, event: str, alert_id: int, at: float) -> None:
    """Queue a webhook event with the alert as it is now (inside the changing transaction)."""
    alert = _one(conn, alert_id)
    conn.execute(
        "INSERT INTO alert_events (event_id, event, alert_id, at, payload) VALUES (?, ?, ?, ?, ?)",
        (str(uuid.uuid4()), event, alert_id, at, json.dumps(alert, separators=(",", ":"))),
    )


def _event_of(kind: str, what: str) -> str:
    if kind == "gateway_offline":
        return "gateway.offline" if what == "opened" else "gateway.online"
    return f"alert.{what}"


def _rule_id(conn: Conn, sensor_id: int, a: WireAlert) -> int | None:
    """The hub rule behind an edge "rule" alert: the edge names the level (severity and the
    threshold it crossed), not the hub's rule id, so the id is found among the sensor's rules."""
    rows = conn.execute(
        "SELECT id, threshold, threshold_high FROM alert_rules "
        "WHERE sensor_id = ? AND severity = ? AND enabled = TRUE ORDER BY id",
        (sensor_id, a.severity.upper()),
    ).fetchall()
    for rid, lo, hi in rows:
        if a.threshold_value in (lo, hi):
            return int(rid)
    return int(rows[0][0]) if rows else None


class AlertsMixin(RulesMixin, IngestMixin):
    # -- ingest: edge alerts become fleet alerts -----------------------------------------

    def _upsert_alerts(
        self, conn: Conn, gateway_id: int, ids: dict[str, int], alerts: Sequence[WireAlert]
    ) -> None:
        super()._upsert_alerts(conn, gateway_id, ids, alerts)
        at = now()
        factory = int(
            conn.execute("SELECT factory_id FROM gateways WHERE id = ?", (gateway_id,)).fetchone()[
                0
            ]
        )
        for a in alerts:
            self._fleet_alert(conn, gateway_id, factory, ids[a.key], a, at)

    def _fleet_alert(
        self, conn: Conn, gateway_id: int, factory: int, sensor_id: int, a: WireAlert, at: float
    ) -> None:
        row = conn.execute(
            "SELECT id, state, severity, value FROM alerts "
            "WHERE gateway_id = ? AND edge_alert_id = ?",
            (gateway_id, a.id),
        ).fetchone()
        if row is None:
            rule_id = _rule_id(conn, sensor_id, a) if a.rule == "rule" else None
            alert_id = int(
                conn.execute(
                    "INSERT INTO alerts (kind, gateway_id, factory_id, sensor_id, rule_id, "
                    "edge_alert_id, breach_type, severity, state, opened_at, value, "
                    "threshold_value, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?) RETURNING id",
                    (
                        a.rule,
                        gateway_id,
                        factory,
                        sensor_id,
                        rule_id,
                        a.id,
                        a.breach_type,
                        a.severity,
                        a.opened_at,
                        a.value,
                        a.threshold_value,
                        at,
                    ),
                ).fetchone()[0]
            )
            journal(conn, alert_id, at, GATEWAY, "opened", severity=a.severity)
            announce(conn, "alert.opened", alert_id, at)
            state, severity = "active", a.severity
        else:
            alert_id, state, severity = int(row[0]), str(row[1]), str(row[2])
        if state != "active":
            return  # a cleared alert stays cleared, whatever a late re-send says
        if a.severity != severity:
            up = SEVERITY_RANK.get(a.severity, 0) > SEVERITY_RANK.get(severity, 0)
            conn.execute(
                "UPDATE alerts SET severity = ?, value = ?, threshold_value = ?, updated_at = ? "
                "WHERE id = ?",
                (a.severity, a.value, a.threshold_value, at, alert_id),
            )
            if a.rule == "rule":
                conn.execute(
                    "UPDATE alerts SET rule_id = ? WHERE id = ?",
                    (_rule_id(conn, sensor_id, a), alert_id),
                )
            action = "escalated" if up else "de-escalated"
            journal(conn, alert_id, at, GATEWAY, action, severity=a.severity)
        elif row is not None and row[3] != a.value:
            conn.execute(
                "UPDATE alerts SET value = ?, updated_at = ? WHERE id = ?", (a.value, at, alert_id)
            )
        if a.closed_at is not None:
            # A clear stamped before the open (the readings came out of order) took no time.
            conn.execute(
                "UPDATE alerts SET state = 'cleared', cleared_at = CASE WHEN opened_at > ? "
                "THEN opened_at ELSE ? END, updated_at = ? WHERE id = ?",
                (a.closed_at, a.closed_at, at, alert_id),
            )
            journal(conn, alert_id, at, GATEWAY, "cleared", severity=a.severity)
            announce(conn, "alert.cleared", alert_id, at)

    def _gateway_synced(self, conn: Conn, gateway_id: int) -> None:
        # The gateway synced: its offline alert (if any) clears, in the batch's own
        # transaction. When it is online (the usual case) the UPDATE matches nothing: one
        # probe of the partial index of active offline alerts.
        self._clear_offline(conn, gateway_id, now(), GATEWAY)

    # -- gateway offline -----------------------------------------------------------------

    def _clear_offline(self, conn: Conn, gateway_id: int, at: float, actor: Actor) -> int:
        rows = conn.execute(
            "UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ? "
            "WHERE gateway_id = ? AND kind = 'gateway_offline' AND state = 'active' RETURNING id",
            (at, at, gateway_id),
        ).fetchall()
        for (alert_id,) in rows:
            journal(conn, int(alert_id), at, actor, "cleared")
            announce(conn, "gateway.online", int(alert_id), at)
        return len(rows)

    def evaluate_gateways(self, offline_after_s: float, at: float | None = None) -> dict[str, int]:
        """Open one gateway_offline alert per gateway silent for ``offline_after_s`` (never
        seen and revoked gateways are not offline), and clear those of gateways seen again.
        Safe in several hub processes at once: the partial unique index admits one."""
        at = now() if at is None else at
        cutoff = at - offline_after_s
        opened = cleared = 0
        # A read first: the worker asks every few seconds, and most of the time nothing
        # changed; the write lock (SQLite: one writer, shared with ingest) only when needed.
        if not self._fetchone(
            "SELECT 1 FROM gateways g WHERE (g.revoked = FALSE AND g.last_seen < ? AND NOT "
            "EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = g.id AND "
            "a.kind = 'gateway_offline' AND a.state = 'active')) OR ((g.last_seen >= ? OR "
            "g.revoked = TRUE) AND EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = g.id "
            "AND a.kind = 'gateway_offline' AND a.state = 'active')) LIMIT 1",
            (cutoff, cutoff),
        ):
            return {"opened": 0, "cleared": 0}
        with self._write() as conn:
            silent = conn.execute(
                "SELECT g.id, g.factory_id, g.last_seen FROM gateways g "
                "WHERE g.revoked = FALSE AND g.last_seen IS NOT NULL AND g.last_seen < ? "
                "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = g.id "
                "AND a.kind = 'gateway_offline' AND a.state = 'active') ORDER BY g.id",
                (cutoff,),
            ).fetchall()
            for gid, fid, last_seen in silent:
                row = conn.execute(
                    "INSERT INTO alerts (kind, gateway_id, factory_id, severity, state, "
                    "opened_at, value, threshold_value, updated_at) "
                    "VALUES ('gateway_offline', ?, ?, ?, 'active', ?, ?, ?, ?) "
                    "ON CONFLICT (gateway_id) WHERE kind = 'gateway_offline' "
                    "AND state = 'active' DO NOTHING RETURNING id",
                    (gid, fid, GATEWAY_OFFLINE_SEVERITY, at, at - last_seen, offline_after_s, at),
                ).fetchone()
                if row is not None:
                    opened += 1
                    journal(conn, int(row[0]), at, SYSTEM, "opened", severity="warning")
                    announce(conn, "gateway.offline", int(row[0]), at)
            seen = conn.execute(
                "SELECT DISTINCT a.gateway_id FROM alerts a JOIN gateways g ON g.id = a.gateway_id "
                "WHERE a.kind = 'gateway_offline' AND a.state = 'active' "
                "AND (g.last_seen >= ? OR g.revoked = TRUE)",
                (cutoff,),
            ).fetchall()
            for (gid,) in seen:
                cleared += self._clear_offline(conn, int(gid), at, SYSTEM)
        return {"opened": opened, "cleared": cleared}

    def stale_sensors(self, sensor_ids: Iterable[int]) -> set[int]:
        """Which of ``sensor_ids`` are stale: the gateway that sent their newest reading has
        an active gateway_offline alert (one alert for the gateway, not one per sensor)."""
        wanted = list(sensor_ids)
        with self._reader() as conn:
            offline = {
                int(r[0])
                for r in conn.execute(
                    "SELECT gateway_id FROM alerts WHERE kind = 'gateway_offline' "
                    "AND state = 'active'"
                ).fetchall()
            }
            if not offline or not wanted:
                return set()
            # Only sensors of the factories of offline gateways can be stale.
            marks = ", ".join("?" * len(offline))
            candidates = {
                int(r[0])
                for r in conn.execute(
                    "SELECT s.id FROM sensors s WHERE s.factory_id IN "
                    f"(SELECT factory_id FROM gateways WHERE id IN ({marks}))",
                    tuple(offline),
                ).fetchall()
            }
            stale = set()
            for sensor_id in (s for s in wanted if s in candidates):
                row = conn.execute(
                    "SELECT id FROM readings WHERE sensor_id = ? ORDER BY ts DESC LIMIT 1",
                    (sensor_id,),
                ).fetchone()
                if row is not None and int(row[0]) >> SEQ_BITS in offline:
                    stale.add(sensor_id)
        return stale

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
            clauses.append("lower(a.severity) = ?")
            params.append(where.severity.lower())
        sql_where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._reader(snapshot=True) as conn:
            total = int(
                conn.execute(
                    "SELECT count(*) FROM alerts a JOIN gateways g ON g.id = a.gateway_id"
                    + sql_where,
                    params,
                ).fetchone()[0]
            )
            rows = dicts(
                conn.execute(
                    _SELECT + sql_where + " ORDER BY a.opened_at DESC, a.id DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return [_alert(r) for r in rows], total

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._reader() as conn:
            return _one(conn, alert_id)

    def alert_journal(self, alert_id: int) -> list[dict[str, Any]]:
        return self._all_dicts(
            f"SELECT {_JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )

    def journal_page(
        self, alert_id: int, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """(``limit`` journal entries from ``offset``, oldest first; how many in all)."""
        with self._reader(snapshot=True) as conn:
            total = _journal_total(conn, alert_id)
            rows = dicts(
                conn.execute(
                    f"SELECT {_JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? "
                    "ORDER BY id LIMIT ? OFFSET ?",
                    (alert_id, limit, offset),
                )
            )
        return rows, total

    def journal_tail(self, alert_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(the newest ``limit`` journal entries, oldest first; how many in all)."""
        with self._reader(snapshot=True) as conn:
            total = _journal_total(conn, alert_id)
            rows = dicts(
                conn.execute(
                    f"SELECT {_JOURNAL_COLUMNS} FROM alert_journal WHERE alert_id = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (alert_id, limit),
                )
            )
        return rows[::-1], total

    def active_edge_alerts(self, gateway_id: int, edge_ids: Sequence[int]) -> dict[int, float]:
        """Of the gateway's alert ids ``edge_ids``, those the hub holds active, with the
        opened_at it has for each."""
        found: dict[int, float] = {}
        with self._reader() as conn:
            for i in range(0, len(edge_ids), 500):
                part = list(edge_ids[i : i + 500])
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    "SELECT edge_alert_id, opened_at FROM alerts WHERE gateway_id = ? "
                    f"AND state = 'active' AND edge_alert_id IN ({marks})",
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
        with self._write() as conn:
            if _one(conn, alert_id) is None:
                return None
            changed = conn.execute(
                "UPDATE alerts SET acknowledged = TRUE, acknowledged_at = ?, acknowledged_by = ?, "
                "acknowledged_role = ?, updated_at = ? WHERE id = ? AND acknowledged = FALSE",
                (at, actor.token_id, actor.role, at, alert_id),
            ).rowcount
            if not changed:
                raise Conflict(f"alert {alert_id} is acknowledged already")
            journal(conn, alert_id, at, actor, "acknowledged", comment=comment)
            _audit(conn, actor, "alert.ack", alert_id, {"comment": comment}, at)
            announce(conn, "alert.acknowledged", alert_id, at)
            return _one(conn, alert_id)

    def shelve_alert(
        self, alert_id: int, actor: Actor, until: float, comment: str | None
    ) -> dict[str, Any] | None:
        """Shelve until ``until`` (a later shelve replaces the time); Conflict: cleared."""
        at = now()
        with self._write() as conn:
            alert = _one(conn, alert_id)
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
            _audit(conn, actor, "alert.shelve", alert_id, detail, at)
            return _one(conn, alert_id)

    def unshelve_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """Unshelve; Conflict: not shelved (or its shelve ran out already)."""
        at = now()
        with self._write() as conn:
            if _one(conn, alert_id) is None:
                return None
            changed = conn.execute(
                "UPDATE alerts SET shelved_until = NULL, updated_at = ? "
                "WHERE id = ? AND shelved_until > ?",
                (at, alert_id, at),
            ).rowcount
            if not changed:
                raise Conflict(f"alert {alert_id} is not shelved")
            journal(conn, alert_id, at, actor, "unshelved", comment=comment)
            _audit(conn, actor, "alert.unshelve", alert_id, {"comment": comment}, at)
            return _one(conn, alert_id)

    def expire_shelves(self, at: float | None = None) -> int:
        """Journal the shelves that ran out (reads treat them as unshelved already)."""
        at = now() if at is None else at
        if not self._fetchone("SELECT 1 FROM alerts WHERE shelved_until <= ? LIMIT 1", (at,)):
            return 0
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE alerts SET shelved_until = NULL, updated_at = ? "
                "WHERE shelved_until <= ? RETURNING id",
                (at, at),
            ).fetchall()
            for (alert_id,) in rows:
                journal(conn, int(alert_id), at, SYSTEM, "shelve_expired")
        return len(rows)

    # -- webhook outbox ------------------------------------------------------------------

    def alert_events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        return self._all_dicts(
            "SELECT id, event_id, event, alert_id, at, payload FROM alert_events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )

    def webhook_lease(self, url: str, owner: str, lease_s: float) -> int | None:
        """Take (or renew) the right to send to ``url``: the id of the last event delivered
        there, or None when there is nothing to send or another hub process holds it. A new
        URL starts at the newest event: it gets what happens from now on, not the history."""
        at = now()
        # A read first: the sender asks twice a second, and an idle hub should not take the
        # write lock (SQLite: one writer, shared with ingest) to learn that nothing is new.
        with self._reader(snapshot=True) as conn:
            cursor = conn.execute(
                "SELECT last_event, lease_owner, lease_until FROM webhook_cursors WHERE url = ?",
                (url,),
            ).fetchone()
            top = int(conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0])
        if cursor is not None:
            last, holder, until = int(cursor[0]), cursor[1], cursor[2]
            if last >= top:
                return None  # nothing new
            if holder not in (None, owner) and until is not None and until >= at:
                return None  # another process delivers to this URL
        with self._write() as conn:
            conn.execute(
                "INSERT INTO webhook_cursors (url, last_event) "
                "VALUES (?, (SELECT coalesce(max(id), 0) FROM alert_events)) "
                "ON CONFLICT (url) DO NOTHING",
                (url,),
            )
            row = conn.execute(
                "UPDATE webhook_cursors SET lease_owner = ?, lease_until = ? WHERE url = ? "
                "AND (lease_owner = ? OR lease_until IS NULL OR lease_until < ?) "
                "RETURNING last_event",
                (owner, at + lease_s, url, owner, at),
            ).fetchone()
        return None if row is None else int(row[0])

    def webhook_delivered(self, url: str, owner: str, event: int) -> bool:
        """Move ``url``'s cursor past ``event``; False when the lease was lost meanwhile."""
        with self._write() as conn:
            return bool(
                conn.execute(
                    "UPDATE webhook_cursors SET last_event = ? WHERE url = ? AND lease_owner = ? "
                    "AND last_event < ?",
                    (event, url, owner, event),
                ).rowcount
            )

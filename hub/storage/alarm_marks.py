"""EEMUA 191's nuisance marks on alerts, kept in storage for the console and the alarm
report: *chattering* (the alert's source went active -> cleared ``chattering_count`` times or
more within ``chattering_window_s``, by the edge's clock) and *stale* (active longer than
``stale_after_s``).

Facts a report reads: ``alerts.chattering`` / ``chattering_at`` (when the hub marked it) and
``alerts.stale`` / ``stale_at``, and the journal actions ``chattering`` and ``stale`` (role
``system``); a chattering alert that is shelved for it has a ``shelved`` entry by ``system``
with the comment ``chattering``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.storage.alert_rows import journal
from hub.storage.changelog import SYSTEM
from hub.storage.sqlbase import Conn

CHATTERING_COMMENT = "chattering"


@dataclass(frozen=True, slots=True)
class AlarmLimits:
    """hub.toml's ``[alarms]`` as storage uses them (hub.alert_settings.AlarmSettings)."""

    chattering_count: int = 3
    chattering_window_s: float = 60.0
    chattering_shelve_s: float = 0.0  # 0: mark only
    stale_after_s: float = 86400.0


def _clears_in_window(conn: Conn, alert_id: int, end: float, limits: AlarmLimits) -> int:
    """How often the source of ``alert_id`` cleared in (end - window, end]."""
    return int(
        conn.execute(
            "SELECT count(*) FROM alerts o JOIN alerts a ON a.id = ? "
            "WHERE o.sensor_id = a.sensor_id AND o.kind = a.kind "
            "AND o.gateway_id = a.gateway_id AND o.breach_type = a.breach_type "
            "AND o.cleared_at > ? AND o.cleared_at <= ?",
            (alert_id, end - limits.chattering_window_s, end),
        ).fetchone()[0]
    )


def _mark(conn: Conn, alert_id: int, at: float) -> bool:
    changed = conn.execute(
        "UPDATE alerts SET chattering = TRUE, chattering_at = ?, updated_at = ? "
        "WHERE id = ? AND chattering = FALSE",
        (at, at, alert_id),
    ).rowcount
    if changed:
        journal(conn, alert_id, at, SYSTEM, "chattering")
    return bool(changed)


def on_open(conn: Conn, alert_id: int, opened_at: float, at: float, limits: AlarmLimits) -> None:
    """A new alert whose source chatters is marked at once, and shelved for
    ``chattering_shelve_s`` when that is set, before anything announces it."""
    if _clears_in_window(conn, alert_id, opened_at, limits) < limits.chattering_count:
        return
    _mark(conn, alert_id, at)
    if limits.chattering_shelve_s > 0:
        conn.execute(
            "UPDATE alerts SET shelved_until = ? WHERE id = ?",
            (at + limits.chattering_shelve_s, alert_id),
        )
        journal(conn, alert_id, at, SYSTEM, "shelved", comment=CHATTERING_COMMENT)


def on_clear(conn: Conn, alert_id: int, cleared_at: float, at: float, limits: AlarmLimits) -> None:
    """The clear that makes a source chatter marks its alert (the clear counts itself)."""
    if _clears_in_window(conn, alert_id, cleared_at, limits) >= limits.chattering_count:
        _mark(conn, alert_id, at)


def mark_stale(conn: Conn, at: float, limits: AlarmLimits) -> int:
    """Mark (and journal) every active alert opened more than ``stale_after_s`` ago."""
    rows = conn.execute(
        "UPDATE alerts SET stale = TRUE, stale_at = ?, updated_at = ? "
        "WHERE state = 'active' AND stale = FALSE AND opened_at < ? RETURNING id",
        (at, at, at - limits.stale_after_s),
    ).fetchall()
    for (alert_id,) in rows:
        journal(conn, int(alert_id), at, SYSTEM, "stale")
    return len(rows)

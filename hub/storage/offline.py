"""Gateway offline alerts: opened for a gateway silent too long (the worker's periodic
evaluation), cleared when it syncs again (inside the batch's own transaction, from ingest)
or is revoked; and which sensors are stale because their gateway is offline."""

from __future__ import annotations

from collections.abc import Iterable

from hub.storage.alert_rows import (
    GATEWAY_OFFLINE_SEVERITY,
    announce,
    gateway,
    gateway_name,
    journal,
)
from hub.storage.changelog import SYSTEM, Actor
from hub.storage.model import SEQ_BITS
from hub.storage.sqlbase import Conn, Database
from hub.storage.tiers import COARSEST
from shared.timeutil import now


class Offline:
    def __init__(self, db: Database) -> None:
        self._db = db

    def gateway_synced(self, conn: Conn, gateway_id: int) -> None:
        # The gateway synced: its offline alert (if any) clears, in the batch's own
        # transaction. When it is online (the usual case) the UPDATE matches nothing: one
        # probe of the partial index of active offline alerts.
        self._clear_offline(conn, gateway_id, now(), None)

    def _clear_offline(self, conn: Conn, gateway_id: int, at: float, actor: Actor | None) -> int:
        """``actor`` None: the gateway's own sync cleared it (its name is looked up only
        then, not on every batch)."""
        rows = conn.execute(
            "UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ? "
            "WHERE gateway_id = ? AND kind = 'gateway_offline' AND state = 'active' RETURNING id",
            (at, at, gateway_id),
        ).fetchall()
        if not rows:
            return 0
        who = actor if actor is not None else gateway(gateway_name(conn, gateway_id))
        for (alert_id,) in rows:
            journal(conn, int(alert_id), at, who, "cleared")
            announce(conn, "gateway.online", int(alert_id), at, who)
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
        if not self._db.fetchone(
            "SELECT 1 FROM gateways g WHERE (g.revoked = FALSE AND g.last_seen < ? AND NOT "
            "EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = g.id AND "
            "a.kind = 'gateway_offline' AND a.state = 'active')) OR ((g.last_seen >= ? OR "
            "g.revoked = TRUE) AND EXISTS (SELECT 1 FROM alerts a WHERE a.gateway_id = g.id "
            "AND a.kind = 'gateway_offline' AND a.state = 'active')) LIMIT 1",
            (cutoff, cutoff),
        ):
            return {"opened": 0, "cleared": 0}
        with self._db.write() as conn:
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
                    announce(conn, "gateway.offline", int(row[0]), at, SYSTEM)
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
        with self._db.reader() as conn:
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
                # The newest bucket's last reading is the sensor's newest: one probe of the
                # tier's key, where raw readings would be read in every day partition
                # (PostgreSQL) to find it. Raw only when the tiers hold none of the sensor.
                row = (
                    conn.execute(
                        f"SELECT last_id FROM {COARSEST.table} WHERE sensor_id = ? "
                        "ORDER BY bucket DESC LIMIT 1",
                        (sensor_id,),
                    ).fetchone()
                    or conn.execute(
                        "SELECT id FROM readings WHERE sensor_id = ? ORDER BY ts DESC LIMIT 1",
                        (sensor_id,),
                    ).fetchone()
                )
                if row is not None and int(row[0]) >> SEQ_BITS in offline:
                    stale.add(sensor_id)
        return stale

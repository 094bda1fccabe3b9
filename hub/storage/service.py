"""Out of service: a sensor taken out of service by a person, or all sensors of a machine
whose status is MAINTENANCE or OFFLINE (ISA-18.2's "out of service": removed from service,
its alarms suppressed). Each change is one transaction with its period row, the journal of
the alerts it touches and its audit row.

While a sensor is out of service the hub opens no alert for it and announces none of its
alerts (hub.storage.service_rows); its readings are stored as always. The periods stay
after they end: the alarm report measures them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from hub.storage.alarm_marks import AlarmLimits
from hub.storage.changelog import Actor, AuditEntry, Who, actor_of, write_entry
from hub.storage.model import Conflict
from hub.storage.service_rows import (
    OUT_STATUSES,
    back_in_service,
    machine_sensors,
    open_period,
    out_of_service_sensors,
    taken_out,
)
from hub.storage.sqlbase import Conn, Database
from shared.timeutil import now


class HasLimits(Protocol):
    """The alert concern, for the ``[alarms]`` settings an alert opened again follows, and
    its hold on the sensors whose held-back edge alerts may open alarms now."""

    limits: AlarmLimits

    def hold_alarms(self, conn: Conn, sensor_ids: Collection[int]) -> None: ...


class Service:
    def __init__(self, db: Database, alerts: HasLimits) -> None:
        self._db = db
        self._alerts = alerts

    # -- a sensor, by a person -----------------------------------------------------------

    def sensor_state(self, sensor_id: int) -> dict[str, Any] | None:
        """Whether a sensor is out of service and why; None: no such sensor."""
        with self._db.reader() as conn:
            return _state(conn, sensor_id)

    def take_out(self, sensor_id: int, who: Who, comment: str | None) -> dict[str, Any] | None:
        """Take a sensor out of service; None: no such sensor; Conflict: it is already."""
        at = now()
        actor = actor_of(who)
        with self._db.write() as conn:
            row = conn.execute("SELECT factory_id FROM sensors WHERE id = ?", (sensor_id,))
            found = row.fetchone()
            if found is None:
                return None
            if open_period(conn, "sensor_id", sensor_id) is not None:
                raise Conflict(f"sensor {sensor_id} is out of service already")
            was_out = bool(out_of_service_sensors(conn, [sensor_id]))
            conn.execute(
                "INSERT INTO service_periods (factory_id, sensor_id, started_at, token_id, role, "
                "by_kind, by_name, by_display, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(found[0]), sensor_id, at, *_by(actor), comment),
            )
            if not was_out:
                taken_out(conn, [sensor_id], actor, comment, at)
            detail = {"comment": comment}
            entry = AuditEntry(who, "sensor.out_of_service", "sensor", str(sensor_id), detail)
            write_entry(conn, entry, at)
            return _state(conn, sensor_id)

    def put_back(self, sensor_id: int, who: Who, comment: str | None) -> dict[str, Any] | None:
        """End a sensor's own out-of-service period; None: no such sensor; Conflict: it has
        none (its machine's status may still hold it out of service)."""
        at = now()
        actor = actor_of(who)
        with self._db.write() as conn:
            if not conn.execute("SELECT 1 FROM sensors WHERE id = ?", (sensor_id,)).fetchone():
                return None
            period = open_period(conn, "sensor_id", sensor_id)
            if period is None:
                raise Conflict(f"sensor {sensor_id} was not put out of service")
            _end(conn, int(period["id"]), actor, at)
            if not out_of_service_sensors(conn, [sensor_id]):
                self._alerts.hold_alarms(conn, [sensor_id])
                back_in_service(conn, [sensor_id], actor, comment, at, self._alerts.limits)
            detail = {"comment": comment}
            entry = AuditEntry(who, "sensor.in_service", "sensor", str(sensor_id), detail)
            write_entry(conn, entry, at)
            return _state(conn, sensor_id)

    # -- a machine's status (hub.storage.crud, inside its transaction) --------------------

    def machine_status(
        self, conn: Conn, machine_id: int, factory_id: int, status: str, who: Who
    ) -> None:
        """A machine got ``status``: MAINTENANCE or OFFLINE take its sensors out of service,
        OPERATIONAL brings them back (the machine change is audited by its caller)."""
        at = now()
        actor = actor_of(who)
        period = open_period(conn, "machine_id", machine_id)
        sensors = machine_sensors(conn, machine_id)
        comment = f"machine {status}"
        if status in OUT_STATUSES:
            if period is not None:
                conn.execute(
                    "UPDATE service_periods SET machine_status = ? WHERE id = ?",
                    (status, period["id"]),
                )
                return
            were_out = out_of_service_sensors(conn, sensors)
            conn.execute(
                "INSERT INTO service_periods (factory_id, machine_id, machine_status, "
                "started_at, token_id, role, by_kind, by_name, by_display, comment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (factory_id, machine_id, status, at, *_by(actor), comment),
            )
            taken_out(conn, set(sensors) - were_out, actor, comment, at)
        elif period is not None:
            _end(conn, int(period["id"]), actor, at)
            back = set(sensors) - out_of_service_sensors(conn, sensors)
            self._alerts.hold_alarms(conn, back)
            back_in_service(conn, back, actor, comment, at, self._alerts.limits)

    def forget_machine(self, conn: Conn, machine_id: int) -> None:
        """A machine's deletion (it has no sensors left) takes its periods."""
        conn.execute("DELETE FROM service_periods WHERE machine_id = ?", (machine_id,))

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int]:
        cur = conn.execute("DELETE FROM service_periods WHERE sensor_id = ?", (sensor_id,))
        return {"service_periods": max(cur.rowcount, 0)}


def _by(actor: Actor) -> tuple[int | None, str, str, str | None, str | None]:
    """Who acted, as a period row keeps it (token_id, role, kind, name, display)."""
    return (actor.token_id, actor.role, actor.kind, actor.name, actor.display)


def _end(conn: Conn, period_id: int, actor: Actor, at: float) -> None:
    conn.execute(
        "UPDATE service_periods SET ended_at = ?, ended_token_id = ?, ended_role = ?, "
        "ended_by_kind = ?, ended_by_name = ?, ended_by_display = ? WHERE id = ?",
        (at, *_by(actor), period_id),
    )


def _state(conn: Conn, sensor_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT s.id, s.machine_id FROM sensors s WHERE s.id = ?", (sensor_id,)
    ).fetchone()
    if row is None:
        return None
    own = open_period(conn, "sensor_id", sensor_id)
    machine = open_period(conn, "machine_id", int(row[1]))
    return {"sensor_id": sensor_id, "sensor": own, "machine": machine}

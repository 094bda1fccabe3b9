"""The alarm roll-up: how many alarms each sensor, machine and factory holds, counted in SQL.

One grouped read over the alarms that still ask for attention (active, or cleared and not
acknowledged): per source and severity, how many are active and not shelved, how many are
not acknowledged and not shelved, how many are shelved and how many are out of service. A
shelved alarm is suppressed (ISA-18.2): it counts only as shelved. So is an alarm whose sensor
is out of service (its own period or its machine's, hub.storage.service_rows): it counts only
as out of service, even when shelved too (the source removed from service is the stronger
suppression, and it is why the alarm is not annunciated). The caller (hub.api.alarm_summary)
folds the rows up sensor -> machine -> factory -> fleet, so every level is the sum of the
level below.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hub.storage.selects import within
from hub.storage.sqlbase import Database, dicts

# A caller limited to some factories (hub.api.scope) passes their ids as ``factories``; None
# reads every factory.
Factories = Collection[int] | None


@dataclass(frozen=True, slots=True)
class AlarmCount:
    """Alarms of one source (factory, machine, sensor: None for a gateway's) and severity."""

    factory_id: int
    machine_id: int | None
    sensor_id: int | None
    severity: str
    active: int
    unacknowledged: int
    shelved: int
    out_of_service: int = 0


# "Shelved" is evaluated against the time of the read, passed three times (one per sum).
_SHELVED = "(a.shelved_until IS NOT NULL AND a.shelved_until > ?)"
# Out of service now: an open period of the alarm's sensor or of its machine (a gateway's
# alarm has neither).
_OUT = (
    "EXISTS (SELECT 1 FROM service_periods p WHERE p.ended_at IS NULL "
    "AND (p.sensor_id = a.sensor_id OR p.machine_id = s.machine_id))"
)
_HEARD = f"NOT {_SHELVED} AND NOT {_OUT}"
_COUNTS = (
    "SELECT a.factory_id, s.machine_id, a.sensor_id, a.severity, "
    f"sum(CASE WHEN a.state = 'active' AND {_HEARD} THEN 1 ELSE 0 END) AS active, "
    f"sum(CASE WHEN a.acknowledged = FALSE AND {_HEARD} THEN 1 ELSE 0 END) "
    "AS unacknowledged, "
    f"sum(CASE WHEN a.state = 'active' AND {_SHELVED} AND NOT {_OUT} THEN 1 ELSE 0 END) "
    "AS shelved, "
    f"sum(CASE WHEN a.state = 'active' AND {_OUT} THEN 1 ELSE 0 END) AS out_of_service "
    "FROM alerts a LEFT JOIN sensors s ON s.id = a.sensor_id "
    "WHERE (a.state = 'active' OR a.acknowledged = FALSE)"
)
_GROUP = " GROUP BY a.factory_id, s.machine_id, a.sensor_id, a.severity"


class AlarmSummary:
    """Counts for the roll-up and the lists each level of the plant is drawn with."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def counts(
        self,
        at: float,
        factory_id: int | None = None,
        machine_id: int | None = None,
        factories: Factories = None,
    ) -> list[AlarmCount]:
        """The alarm counts of the fleet, one factory or one machine, as of ``at``."""
        inside, ids = within("a.factory_id", factories)
        sql, params = _COUNTS + f" AND {inside}", [at, at, at, *ids]
        if factory_id is not None:
            sql += " AND a.factory_id = ?"
            params.append(factory_id)
        if machine_id is not None:
            sql += " AND s.machine_id = ?"
            params.append(machine_id)
        with self._db.reader(snapshot=True) as conn:
            rows = dicts(conn.execute(sql + _GROUP, params))
        return [
            AlarmCount(
                factory_id=int(r["factory_id"]),
                machine_id=None if r["machine_id"] is None else int(r["machine_id"]),
                sensor_id=None if r["sensor_id"] is None else int(r["sensor_id"]),
                severity=str(r["severity"]),
                active=int(r["active"] or 0),
                unacknowledged=int(r["unacknowledged"] or 0),
                shelved=int(r["shelved"] or 0),
                out_of_service=int(r["out_of_service"] or 0),
            )
            for r in rows
        ]

    def factories(self, factories: Factories = None) -> list[dict[str, Any]]:
        inside, ids = within("id", factories)
        return self._db.all_dicts(
            f"SELECT id, name, location FROM factories WHERE {inside} ORDER BY name, id", ids
        )

    def machines(self, factory_id: int | None, factories: Factories = None) -> list[dict[str, Any]]:
        inside, ids = within("m.factory_id", factories)
        sql = (
            "SELECT m.id, m.factory_id, f.name AS factory, m.line, m.name, m.type, m.status "
            f"FROM machines m JOIN factories f ON f.id = m.factory_id WHERE {inside}"
        )
        if factory_id is None:
            return self._db.all_dicts(sql + " ORDER BY f.name, m.line, m.name, m.id", ids)
        return self._db.all_dicts(
            sql + " AND m.factory_id = ? ORDER BY m.line, m.name, m.id", (*ids, factory_id)
        )

    def sensors(self, machine_id: int) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            "SELECT id, key, name, unit, min_threshold, max_threshold, stale FROM sensors "
            "WHERE machine_id = ? ORDER BY name, id",
            (machine_id,),
        )

"""The reads behind the alarm KPI report (GET /alarm-report): every alarm annunciated in a
period, the alarms that stood stale in it, the shelve transitions of its journal, and the
out-of-service periods reaching into it with the alarms held back meanwhile, all
from one snapshot so the figures agree with each other. The KPIs themselves are computed
over these rows (hub.api.alarm_kpis): one bounded query each, the same SQL on both engines.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from hub.storage.selects import within
from hub.storage.sqlbase import Conn, Database

SHELVE_ACTIONS = ("shelved", "unshelved", "shelve_expired")


# One alarm as the report counts it: its row as read, the fields of Annunciated. A year
# holds ~100,000 alarms, and making an object of each row cost more than reading them.
AlarmRow = tuple[float, int | None, int, str, float | None]


class Annunciated(NamedTuple):
    """An AlarmRow with its fields named."""

    opened_at: float
    sensor_id: int | None  # None: a gateway's own alarm (gateway_offline)
    gateway_id: int
    severity: str
    acknowledged_at: float | None


@dataclass(frozen=True, slots=True)
class ShelveEntry:
    alert_id: int
    at: float
    action: str  # one of SHELVE_ACTIONS
    shelved_until: float | None  # the alert's current shelve, for one still running


@dataclass(frozen=True, slots=True)
class ServicePeriod:
    """A sensor's own out-of-service period, or a machine's (MAINTENANCE or OFFLINE)."""

    started_at: float
    ended_at: float | None  # None: still out of service
    sensor_id: int | None
    machine_id: int | None


@dataclass(frozen=True, slots=True)
class AlarmHistory:
    alarms: list[AlarmRow]  # oldest first
    stale: list[tuple[float, float | None]]  # (opened_at, cleared_at) of alarms stale in range
    shelves: list[ShelveEntry]  # by alert, oldest first
    truncated: bool  # more than the limit: the answer would be partial
    service: list[ServicePeriod] = field(default_factory=list)  # reaching into the period
    suppressed: int = 0  # edge alerts opened in the period that the hub held back


class AlarmReport:
    def __init__(self, db: Database) -> None:
        self._db = db

    def history(
        self,
        start: float,
        end: float,
        factory_id: int | None,
        *,
        stale_after_s: float,
        shelves_since: float,
        limit: int,
        factories: Collection[int] | None = None,
    ) -> AlarmHistory:
        """The alarms annunciated in [start, end) (at most ``limit``; ``truncated`` says when
        there were more), those stale at some time in it (active longer than
        ``stale_after_s``), and the shelve entries from ``shelves_since`` up to ``end``;
        ``factories``: only of these (None: all)."""
        where, args = ("", []) if factory_id is None else (" AND factory_id = ?", [factory_id])
        if factories is not None:
            # A scoped caller's fleet: the alarms of its factories only.
            condition, ids = within("factory_id", factories)
            where, args = f"{where} AND {condition}", [*args, *ids]
        with self._db.reader(snapshot=True) as conn:
            rows = conn.execute(
                "SELECT opened_at, sensor_id, gateway_id, severity, acknowledged_at FROM alerts "
                f"WHERE opened_at >= ? AND opened_at < ?{where} LIMIT ?",
                [start, end, *args, limit + 1],
            ).fetchall()
            # The columns come typed as the fields are on both engines (REAL / double
            # precision, INTEGER / bigint, TEXT): the rows are kept as read. Sorted here,
            # not by ORDER BY: the rows come nearly in time order, which Python sorts in one
            # pass, while PostgreSQL sorted a year's rows on disk. Alarms annunciated at the
            # same instant may come in any order: every figure depends on their times only.
            # Past the limit the answer is refused, so which rows were kept does not matter.
            alarms: list[AlarmRow] = sorted(rows[:limit], key=itemgetter(0))
            stale = _stale(conn, start, end, stale_after_s, where, args, limit)
            shelves = _shelves(conn, shelves_since, end, where, args, limit)
            service = _service(conn, start, end, where, args, limit)
            suppressed = _suppressed(conn, start, end, factory_id, factories)
        truncated = any(len(x) > limit for x in (rows, stale, shelves, service))
        return AlarmHistory(
            alarms, stale[:limit], shelves[:limit], truncated, service[:limit], suppressed
        )

    def source_names(
        self, sensor_ids: Collection[int], gateway_ids: Collection[int]
    ) -> tuple[dict[int, str], dict[int, str]]:
        """(sensor id -> key, gateway row id -> name) of the report's top sources."""
        return (
            self._names("SELECT id, key FROM sensors", sensor_ids),
            self._names("SELECT id, name FROM gateways", gateway_ids),
        )

    def _names(self, select: str, ids: Collection[int]) -> dict[int, str]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._db.fetchall(f"{select} WHERE id IN ({marks})", list(ids))
        return {int(r[0]): str(r[1]) for r in rows}


def _stale(
    conn: Conn,
    start: float,
    end: float,
    after_s: float,
    where: str,
    args: Sequence[Any],
    limit: int,
) -> list[tuple[float, float | None]]:
    # Stale from opened_at + after_s until cleared: that span must reach into [start, end).
    rows = conn.execute(
        "SELECT opened_at, cleared_at FROM alerts WHERE opened_at + ? < ? AND "
        f"(cleared_at IS NULL OR (cleared_at > opened_at + ? AND cleared_at > ?)){where} "
        "ORDER BY opened_at, id LIMIT ?",
        [after_s, end, after_s, start, *args, limit + 1],
    ).fetchall()
    return [(float(r[0]), None if r[1] is None else float(r[1])) for r in rows]


def _shelves(
    conn: Conn, since: float, end: float, where: str, args: Sequence[Any], limit: int
) -> list[ShelveEntry]:
    marks = ", ".join("?" for _ in SHELVE_ACTIONS)
    factory = where.replace("factory_id", "a.factory_id")
    rows = conn.execute(
        "SELECT j.alert_id, j.at, j.action, a.shelved_until FROM alert_journal j "
        f"JOIN alerts a ON a.id = j.alert_id WHERE j.action IN ({marks}) "
        f"AND j.at >= ? AND j.at < ?{factory} ORDER BY j.alert_id, j.at, j.id LIMIT ?",
        [*SHELVE_ACTIONS, since, end, *args, limit + 1],
    ).fetchall()
    return [
        ShelveEntry(int(r[0]), float(r[1]), str(r[2]), None if r[3] is None else float(r[3]))
        for r in rows
    ]


def _service(
    conn: Conn, start: float, end: float, where: str, args: Sequence[Any], limit: int
) -> list[ServicePeriod]:
    rows = conn.execute(
        "SELECT started_at, ended_at, sensor_id, machine_id FROM service_periods "
        f"WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?){where} "
        "ORDER BY started_at, id LIMIT ?",
        [end, start, *args, limit + 1],
    ).fetchall()
    return [
        ServicePeriod(
            float(r[0]),
            None if r[1] is None else float(r[1]),
            None if r[2] is None else int(r[2]),
            None if r[3] is None else int(r[3]),
        )
        for r in rows
    ]


def _suppressed(
    conn: Conn,
    start: float,
    end: float,
    factory_id: int | None,
    factories: Collection[int] | None,
) -> int:
    # By the gateway's factory, as a fleet alert's factory_id is.
    where, args = ("", []) if factory_id is None else (" AND g.factory_id = ?", [factory_id])
    if factories is not None:
        condition, ids = within("g.factory_id", factories)
        where, args = f"{where} AND {condition}", [*args, *ids]
    return int(
        conn.execute(
            "SELECT count(*) FROM edge_alerts e JOIN gateways g ON g.id = e.gateway_id "
            f"WHERE e.suppressed = TRUE AND e.opened_at >= ? AND e.opened_at < ?{where}",
            [start, end, *args],
        ).fetchone()[0]
    )

"""The read side: the model (gateways, factories, machines, sensors) and a sensor's readings."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from hub.storage.sqlbase import SqlStorage


def time_range(sensor_id: int, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    # Half-open [from, to): adjacent windows never count a reading twice.
    sql = "sensor_id = ?"
    params: list[Any] = [sensor_id]
    if start is not None:
        sql += " AND ts >= ?"
        params.append(start)
    if end is not None:
        sql += " AND ts < ?"
        params.append(end)
    return sql, params


class ReadsMixin(SqlStorage):
    # The start of ts's bucket of width ?, written twice with the width as both parameters.
    _BUCKET_START: ClassVar[str]

    _GATEWAY_SELECT = (
        "SELECT g.name, f.name AS factory, g.factory_id, g.created_at, g.last_seen, g.backlog, "
        "g.dropped, g.dead_letters, g.agent_version, g.revoked "
        "FROM gateways g JOIN factories f ON f.id = g.factory_id"
    )

    def list_gateways(self) -> list[dict[str, Any]]:
        return self._all_dicts(self._GATEWAY_SELECT + " ORDER BY g.name")

    def get_gateway(self, name: str) -> dict[str, Any] | None:
        return self._one_dict(self._GATEWAY_SELECT + " WHERE g.name = ?", (name,))

    def list_factories(self) -> list[dict[str, Any]]:
        return self._all_dicts(
            "SELECT f.id, f.name, f.created_at, "
            "(SELECT count(*) FROM machines m WHERE m.factory_id = f.id) AS machines "
            "FROM factories f ORDER BY f.id"
        )

    def list_machines(self, factory_id: int | None) -> list[dict[str, Any]]:
        sql = (
            "SELECT m.id, m.factory_id, f.name AS factory, m.line, m.name, m.created_at, "
            "(SELECT count(*) FROM sensors s WHERE s.machine_id = m.id) AS sensors "
            "FROM machines m JOIN factories f ON f.id = m.factory_id"
        )
        if factory_id is None:
            return self._all_dicts(sql + " ORDER BY m.id")
        return self._all_dicts(sql + " WHERE m.factory_id = ? ORDER BY m.id", (factory_id,))

    _SENSOR_SELECT = (
        "SELECT s.id, s.key, s.name, s.machine_id, m.line, m.name AS machine, s.factory_id, "
        "f.name AS factory, s.unit, s.min_threshold, s.max_threshold, s.deadband, s.created_at, "
        # Marked by the gateway: its Sparkplug B edge node died (hub.storage.marks_schema).
        "s.stale "
        "FROM sensors s JOIN machines m ON m.id = s.machine_id "
        "JOIN factories f ON f.id = s.factory_id"
    )

    def list_sensors(
        self, machine_id: int | None = None, key: str | None = None, factory_id: int | None = None
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        filters = (("s.machine_id", machine_id), ("s.key", key), ("s.factory_id", factory_id))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = self._SENSOR_SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._all_dicts(sql + " ORDER BY s.id", params)

    def get_sensor(self, sensor_id: int) -> dict[str, Any] | None:
        return self._one_dict(self._SENSOR_SELECT + " WHERE s.id = ?", (sensor_id,))

    def sensor_census(self, factory_id: int, keys: Collection[str]) -> tuple[int | None, set[str]]:
        cache = self._sensor_cache.get(factory_id, {})
        known = {k for k in keys if k in cache}
        # Keys the cache does not know may still exist (made by another hub process).
        unknown = [k for k in keys if k not in cache]
        if not unknown:
            # The usual batch: every sensor seen before. (One deleted meanwhile is made again
            # by store_batch, which checks the cache inside its transaction.)
            return None, known
        with self._reader() as conn:
            for i in range(0, len(unknown), 500):
                part = unknown[i : i + 500]
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT key FROM sensors WHERE factory_id = ? AND key IN ({marks})",
                    (factory_id, *part),
                ).fetchall()
                known.update(str(r[0]) for r in rows)
            count = conn.execute(
                "SELECT count(*) FROM sensors WHERE factory_id = ?", (factory_id,)
            ).fetchone()[0]
        return int(count), known

    def readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int
    ) -> list[tuple[int, float, float]]:
        where, params = time_range(sensor_id, start, end)
        rows = self._fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # series and stats: hub.storage.rollups (they pick the rollup tier).

    def latest(self, sensor_id: int) -> tuple[int, float, float] | None:
        row = self._fetchone(
            "SELECT id, ts, value FROM readings WHERE sensor_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            (sensor_id,),
        )
        return None if row is None else (row[0], row[1], row[2])

    def count_readings(self, gateway_id: int | None = None) -> int:
        if gateway_id is None:
            return int(self._fetchone("SELECT count(*) FROM readings")[0])
        return int(
            self._fetchone("SELECT count(*) FROM readings WHERE gateway_id = ?", (gateway_id,))[0]
        )

    def readings_after(
        self,
        sensor_id: int,
        after: tuple[float, int] | None,
        start: float | None,
        end: float | None,
        limit: int,
    ) -> list[tuple[int, float, float]]:
        where, params = time_range(sensor_id, start, end)
        if after is not None:
            # Past (ts, id); the plain ts >= bound lets the (sensor_id, ts) index seek to it.
            where += " AND ts >= ? AND (ts > ? OR id > ?)"
            params += [after[0], after[0], after[1]]
        rows = self._fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def readings_before(self, sensor_id: int, ts: float, limit: int) -> list[float]:
        rows = self._fetchall(
            "SELECT value FROM readings WHERE sensor_id = ? AND ts < ? "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            (sensor_id, ts, limit),
        )
        return [r[0] for r in reversed(rows)]

    def last_readings(self, sensor_id: int, limit: int) -> list[tuple[int, float, float]]:
        rows = self._fetchall(
            "SELECT id, ts, value FROM readings WHERE sensor_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            (sensor_id, limit),
        )
        return [(r[0], r[1], r[2]) for r in reversed(rows)]

"""The model as it is read (gateways, factories, machines, sensors: lists, pages, one row,
the census ingest checks), a sensor's thresholds, and the config a gateway fetches when its
factory's version moves. Operators' edits of the model: hub.storage.crud."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict
from typing import Any

from hub.storage.changelog import AuditEntry, Who, write_entry
from hub.storage.model import SensorCache, Thresholds
from hub.storage.selects import (
    FACTORY_SELECT,
    GATEWAY_SELECT,
    MACHINE_SELECT,
    SENSOR_SELECT,
    within,
)
from hub.storage.sqlbase import Database, dicts


class Catalog:
    def __init__(self, db: Database, cache: SensorCache) -> None:
        self._db = db
        self._cache = cache

    def list_gateways(self) -> list[dict[str, Any]]:
        return self._db.all_dicts(GATEWAY_SELECT + " ORDER BY g.name")

    def get_gateway(self, name: str) -> dict[str, Any] | None:
        return self._db.one_dict(GATEWAY_SELECT + " WHERE g.name = ?", (name,))

    def list_factories(self) -> list[dict[str, Any]]:
        return self._db.all_dicts(
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
            return self._db.all_dicts(sql + " ORDER BY m.id")
        return self._db.all_dicts(sql + " WHERE m.factory_id = ? ORDER BY m.id", (factory_id,))

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
        sql = SENSOR_SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._db.all_dicts(sql + " ORDER BY s.id", params)

    def get_sensor(self, sensor_id: int) -> dict[str, Any] | None:
        return self._db.one_dict(SENSOR_SELECT + " WHERE s.id = ?", (sensor_id,))

    def sensor_census(self, factory_id: int, keys: Collection[str]) -> tuple[int | None, set[str]]:
        cache = self._cache.get(factory_id, {})
        known = {k for k in keys if k in cache}
        # Keys the cache does not know may still exist (made by another hub process).
        unknown = [k for k in keys if k not in cache]
        if not unknown:
            # The usual batch: every sensor seen before. (One deleted meanwhile is made again
            # by store_batch, which checks the cache inside its transaction.)
            return None, known
        found: dict[str, int] = {}
        with self._db.reader() as conn:
            for i in range(0, len(unknown), 500):
                part = unknown[i : i + 500]
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT key, id FROM sensors WHERE factory_id = ? AND key IN ({marks})",
                    (factory_id, *part),
                ).fetchall()
                found.update((str(k), int(i)) for k, i in rows)
            count = conn.execute(
                "SELECT count(*) FROM sensors WHERE factory_id = ?", (factory_id,)
            ).fetchone()[0]
        known.update(found)
        if found and factory_id in self._cache:
            # Committed sensors another hub process made: cached here too, so that this
            # batch (and the next) is a usual one instead of making them again, sensor by
            # sensor, in its transaction. A sensor deleted meanwhile is caught by the batch's
            # lock of its sensors, as for any cached id.
            self._cache[factory_id].update(found)
        return int(count), known

    # -- paged lists ---------------------------------------------------------------------

    def _page(
        self,
        select: str,
        where: Mapping[str, Any],
        order: str,
        offset: int,
        limit: int,
        scope: tuple[str, Collection[int] | None] = ("", None),
    ) -> tuple[list[dict[str, Any]], int]:
        clauses = [f"{column} = ?" for column, value in where.items() if value is not None]
        params = [value for value in where.values() if value is not None]
        column, factories = scope
        if factories is not None:
            # A scoped caller's list: rows of its factories only, in the total as in the page.
            condition, ids = within(column, factories)
            clauses.append(condition)
            params.extend(ids)
        clause = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        # One read transaction: the total and the page describe the same state.
        with self._db.reader(snapshot=True) as conn:
            total = conn.execute(f"SELECT count(*) FROM ({select}{clause}) t", params).fetchone()
            rows = dicts(
                conn.execute(
                    f"{select}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return rows, int(total[0])

    def gateways_page(
        self, offset: int, limit: int, factories: Collection[int] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        return self._page(GATEWAY_SELECT, {}, "g.name", offset, limit, ("g.factory_id", factories))

    def factories_page(
        self, offset: int, limit: int, factories: Collection[int] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        return self._page(FACTORY_SELECT, {}, "f.id", offset, limit, ("f.id", factories))

    def machines_page(
        self,
        factory_id: int | None,
        offset: int,
        limit: int,
        factories: Collection[int] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        where = {"m.factory_id": factory_id}
        return self._page(MACHINE_SELECT, where, "m.id", offset, limit, ("m.factory_id", factories))

    def sensors_page(
        self,
        offset: int,
        limit: int,
        *,
        machine_id: int | None = None,
        key: str | None = None,
        factory_id: int | None = None,
        factories: Collection[int] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        where = {"s.machine_id": machine_id, "s.key": key, "s.factory_id": factory_id}
        return self._page(SENSOR_SELECT, where, "s.id", offset, limit, ("s.factory_id", factories))

    def get_factory(self, factory_id: int) -> dict[str, Any] | None:
        return self._db.one_dict(FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))

    def get_machine(self, machine_id: int) -> dict[str, Any] | None:
        return self._db.one_dict(MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))

    def machines_named(self, line: str, name: str) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            MACHINE_SELECT + " WHERE m.line = ? AND m.name = ? ORDER BY m.id", (line, name)
        )

    # -- thresholds and gateway config ------------------------------------------------

    def set_thresholds(
        self, sensor_id: int, thresholds: Thresholds, *, actor: Who | None = None
    ) -> int | None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT factory_id, min_threshold, max_threshold, deadband FROM sensors "
                "WHERE id = ?",
                (sensor_id,),
            ).fetchone()
            if row is None:
                return None
            factory_id = int(row[0])
            new = (thresholds.min, thresholds.max, thresholds.deadband)
            if tuple(row[1:]) != new:
                conn.execute(
                    "UPDATE sensors SET min_threshold = ?, max_threshold = ?, deadband = ? "
                    "WHERE id = ?",
                    (*new, sensor_id),
                )
                conn.execute(
                    "UPDATE factories SET config_version = config_version + 1 WHERE id = ?",
                    (factory_id,),
                )
            version = conn.execute(
                "SELECT config_version FROM factories WHERE id = ?", (factory_id,)
            ).fetchone()[0]
            if actor is not None:
                # In the change's transaction: no threshold without its audit row.
                write_entry(
                    conn,
                    AuditEntry(
                        actor, "sensor.thresholds", "sensor", str(sensor_id), asdict(thresholds)
                    ),
                )
        return int(version)

    def gateway_config(self, name: str) -> tuple[int, list[dict[str, Any]]] | None:
        with self._db.reader(snapshot=True) as conn:
            row = conn.execute(
                "SELECT g.factory_id, f.config_version FROM gateways g "
                "JOIN factories f ON f.id = g.factory_id WHERE g.name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            rules = dicts(
                conn.execute(
                    "SELECT key, min_threshold AS min, max_threshold AS max, deadband "
                    "FROM sensors WHERE factory_id = ? "
                    "AND (min_threshold IS NOT NULL OR max_threshold IS NOT NULL) ORDER BY key",
                    (row[0],),
                )
            )
        return int(row[1]), rules

"""A sensor's thresholds, and the config a gateway fetches when its factory's version moves."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from hub.storage.audit import AuditEntry, Who, write_entry
from hub.storage.model import Thresholds
from hub.storage.sqlbase import SqlStorage, dicts


class ThresholdsMixin(SqlStorage):
    def set_thresholds(
        self, sensor_id: int, thresholds: Thresholds, *, actor: Who | None = None
    ) -> int | None:
        with self._write() as conn:
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
        with self._reader(snapshot=True) as conn:
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

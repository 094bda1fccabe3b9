"""The SELECTs of the model's rows as the API shows them, shared by the catalog's reads and
the operators' edits (which answer the row they changed), and the condition that narrows a
list to a scoped caller's factories."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

GATEWAY_SELECT = (
    "SELECT g.name, f.name AS factory, g.factory_id, g.created_at, g.last_seen, g.backlog, "
    "g.dropped, g.dead_letters, g.agent_version, g.revoked "
    "FROM gateways g JOIN factories f ON f.id = g.factory_id"
)
SENSOR_SELECT = (
    "SELECT s.id, s.key, s.name, s.machine_id, m.line, m.name AS machine, s.factory_id, "
    "f.name AS factory, s.unit, s.min_threshold, s.max_threshold, s.deadband, s.created_at, "
    # Marked by the gateway: its Sparkplug B edge node died (schema step 6).
    "s.stale "
    "FROM sensors s JOIN machines m ON m.id = s.machine_id "
    "JOIN factories f ON f.id = s.factory_id"
)
FACTORY_SELECT = (
    "SELECT f.id, f.name, f.location, f.created_at, "
    "(SELECT count(*) FROM machines m WHERE m.factory_id = f.id) AS machines, "
    "(SELECT count(*) FROM gateways g WHERE g.factory_id = f.id) AS gateways "
    "FROM factories f"
)
MACHINE_SELECT = (
    "SELECT m.id, m.factory_id, f.name AS factory, m.line, m.name, m.type, m.status, "
    "m.created_at, (SELECT count(*) FROM sensors s WHERE s.machine_id = m.id) AS sensors "
    "FROM machines m JOIN factories f ON f.id = m.factory_id"
)


def within(column: str, factories: Collection[int] | None) -> tuple[str, list[Any]]:
    """(an SQL condition, its parameters) keeping rows whose ``column`` is one of
    ``factories``; None: every factory (the condition is always true)."""
    if factories is None:
        return "1 = 1", []
    if not factories:
        return "1 = 0", []
    marks = ", ".join("?" * len(factories))
    return f"{column} IN ({marks})", sorted(factories)

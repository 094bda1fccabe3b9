"""Which factory a thing belongs to: what a factory scope is checked against (hub.api.scope).
The SQL that narrows a list to some factories is hub.storage.selects.within.

One short indexed read per question, so the check before a request costs one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from hub.storage.sqlbase import Database

Kind = Literal["factory", "machine", "sensor", "gateway", "alert", "rule"]

# (id or name) -> factory id, per kind. A gateway is named by its name (the API's id).
_OWNER: dict[str, str] = {
    "factory": "SELECT id FROM factories WHERE id IN ({})",
    "machine": "SELECT id, factory_id FROM machines WHERE id IN ({})",
    "sensor": "SELECT id, factory_id FROM sensors WHERE id IN ({})",
    "gateway": "SELECT name, factory_id FROM gateways WHERE name IN ({})",
    "alert": "SELECT id, factory_id FROM alerts WHERE id IN ({})",
    "rule": "SELECT r.id, s.factory_id FROM alert_rules r JOIN sensors s ON s.id = r.sensor_id "
    "WHERE r.id IN ({})",
}


class Owners:
    def __init__(self, db: Database) -> None:
        self._db = db

    def factories_of(self, kind: Kind, idents: Sequence[int | str]) -> dict[int | str, int]:
        """ident -> its factory id, for those of ``idents`` that exist."""
        found: dict[int | str, int] = {}
        unique = list(dict.fromkeys(idents))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            sql = _OWNER[kind].format(", ".join("?" * len(part)))
            for row in self._db.fetchall(sql, part):
                # A factory owns itself; every other kind names its factory in the second column.
                found[row[0]] = int(row[0] if kind == "factory" else row[1])
        return found

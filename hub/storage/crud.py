"""Operators' edits of the model Factory -> Machine -> Sensor (the seeds' CRUD), and the
paged lists of it.

Each change commits together with its audit row (hub.storage.audit). Values arrive
validated (hub.api.crud); storage answers for what only the database knows: a name taken
(:class:`~hub.storage.model.Conflict`), a parent that does not exist (:class:`Unknown`),
a factory or machine that still has children (Conflict).

Keys: a sensor's key is ``line/machine/sensor``. A sensor created here gets the key its
machine's line and name and its own name make, so when a gateway's data for that key
arrives later, ingest resolves it to this sensor (hub.storage.ingest looks sensors up by
(factory, key)). A machine's line and name are part of its sensors' keys: they may change
only while it has no sensors, and a sensor's PATCH changes its display name, not its key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from typing import Any

from hub.storage.audit import AuditEntry, Who, write_entry
from hub.storage.model import Conflict, StorageError
from hub.storage.reads import ReadsMixin
from hub.storage.rollups import RollupsMixin
from hub.storage.sqlbase import Conn, SqlStorage, dicts, row_dict
from shared.timeutil import now

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
SENSOR_SELECT = ReadsMixin._SENSOR_SELECT
GATEWAY_SELECT = ReadsMixin._GATEWAY_SELECT

# Tables holding a sensor's data, by column, emptied when the sensor is deleted (the rollup
# tiers by their own helper). Those that other parts of the schema add (the alert
# lifecycle) are cleaned when present.
_SENSOR_DATA = (
    ("readings", "sensor_id"),
    ("bulk_keys", "sensor_id"),
    ("anomalies", "sensor_id"),
    ("anomaly_scans", "sensor_id"),
    ("edge_alerts", "sensor_id"),
    ("alert_rules", "sensor_id"),
)


class Unknown(StorageError):
    """A body names a parent (factory_id, machine_id) that does not exist."""

    def __init__(self, field: str, ident: int) -> None:
        super().__init__(f"no {field.removesuffix('_id')} with id {ident}")
        self.field = field
        self.ident = ident


def unique_violation(exc: BaseException) -> bool:
    """A UNIQUE constraint refused the write (sqlite3 and psycopg both say IntegrityError;
    psycopg's UniqueViolation is one, NOT NULL and CHECK are others)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    return type(exc).__name__ == "UniqueViolation"


def present_tables(conn: Conn, names: Collection[str]) -> set[str]:
    """Which of ``names`` exist, on either engine."""
    wanted = sorted(names)
    marks = ", ".join("?" * len(wanted))
    if isinstance(conn, sqlite3.Connection):
        sql = f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})"
    else:
        sql = (
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            f"AND tablename IN ({marks})"
        )
    return {str(r[0]) for r in conn.execute(sql, wanted).fetchall()}


def _one(conn: Conn, sql: str, params: list[Any] | tuple[Any, ...]) -> dict[str, Any] | None:
    cur = conn.execute(sql, params)
    row = cur.fetchone()
    return None if row is None else row_dict(cur, row)


def _bump(conn: Conn, factory_id: int) -> None:
    # Gateways of the factory fetch their config again: a sensor with bounds came or went.
    conn.execute(
        "UPDATE factories SET config_version = config_version + 1 WHERE id = ?", (factory_id,)
    )


class CrudMixin(SqlStorage):
    # -- paged lists ---------------------------------------------------------------------

    def _page(
        self, select: str, where: Mapping[str, Any], order: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        clauses = [f"{column} = ?" for column, value in where.items() if value is not None]
        params = [value for value in where.values() if value is not None]
        clause = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        # One read transaction: the total and the page describe the same state.
        with self._reader(snapshot=True) as conn:
            total = conn.execute(f"SELECT count(*) FROM ({select}{clause}) t", params).fetchone()
            rows = dicts(
                conn.execute(
                    f"{select}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            )
        return rows, int(total[0])

    def gateways_page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        return self._page(GATEWAY_SELECT, {}, "g.name", offset, limit)

    def factories_page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        return self._page(FACTORY_SELECT, {}, "f.id", offset, limit)

    def machines_page(
        self, factory_id: int | None, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        return self._page(MACHINE_SELECT, {"m.factory_id": factory_id}, "m.id", offset, limit)

    def sensors_page(
        self,
        offset: int,
        limit: int,
        *,
        machine_id: int | None = None,
        key: str | None = None,
        factory_id: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        where = {"s.machine_id": machine_id, "s.key": key, "s.factory_id": factory_id}
        return self._page(SENSOR_SELECT, where, "s.id", offset, limit)

    # -- factories -----------------------------------------------------------------------

    def get_factory(self, factory_id: int) -> dict[str, Any] | None:
        return self._one_dict(FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))

    def create_factory(self, name: str, location: str | None, actor: Who) -> dict[str, Any]:
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO factories (name, location, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, location, now()),
            ).fetchone()
            if row is None:
                raise Conflict(f"a factory named {name!r} exists")
            factory_id = int(row[0])
            write_entry(
                conn,
                AuditEntry(
                    actor,
                    "factory.create",
                    "factory",
                    str(factory_id),
                    {"name": name, "location": location},
                ),
            )
            created = _one(conn, FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))
        assert created is not None
        return created

    def update_factory(
        self, factory_id: int, changes: Mapping[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (name, location); None when there is no such factory."""
        try:
            with self._write() as conn:
                if not conn.execute(
                    "SELECT 1 FROM factories WHERE id = ?", (factory_id,)
                ).fetchone():
                    return None
                if changes:
                    sets = ", ".join(f"{column} = ?" for column in changes)
                    conn.execute(
                        f"UPDATE factories SET {sets} WHERE id = ?", (*changes.values(), factory_id)
                    )
                write_entry(
                    conn,
                    AuditEntry(actor, "factory.update", "factory", str(factory_id), dict(changes)),
                )
                return _one(conn, FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))
        except Exception as exc:
            if unique_violation(exc):
                raise Conflict(f"a factory named {changes.get('name')!r} exists") from None
            raise

    def delete_factory(self, factory_id: int, actor: Who) -> bool:
        """Delete an empty factory; False when there is none, Conflict while it has
        machines or gateways (their data would lose its place in the model)."""
        with self._write() as conn:
            row = _one(conn, FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))
            if row is None:
                return False
            if row["machines"] or row["gateways"]:
                raise Conflict(
                    f"factory {factory_id} has {row['machines']} machine(s) and "
                    f"{row['gateways']} gateway(s); delete or move them first"
                )
            conn.execute("DELETE FROM factories WHERE id = ?", (factory_id,))
            write_entry(
                conn,
                AuditEntry(
                    actor, "factory.delete", "factory", str(factory_id), {"name": row["name"]}
                ),
            )
        self._sensor_cache.pop(factory_id, None)
        return True

    # -- machines ------------------------------------------------------------------------

    def get_machine(self, machine_id: int) -> dict[str, Any] | None:
        return self._one_dict(MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))

    def machines_named(self, line: str, name: str) -> list[dict[str, Any]]:
        return self._all_dicts(
            MACHINE_SELECT + " WHERE m.line = ? AND m.name = ? ORDER BY m.id", (line, name)
        )

    def create_machine(self, fields: Mapping[str, Any], actor: Who) -> dict[str, Any]:
        """``fields``: factory_id, line, name, type, status."""
        with self._write() as conn:
            factory_id = int(fields["factory_id"])
            if not conn.execute("SELECT 1 FROM factories WHERE id = ?", (factory_id,)).fetchone():
                raise Unknown("factory_id", factory_id)
            row = conn.execute(
                "INSERT INTO machines (factory_id, line, name, type, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (factory_id, line, name) DO NOTHING "
                "RETURNING id",
                (
                    factory_id,
                    fields["line"],
                    fields["name"],
                    fields.get("type"),
                    fields["status"],
                    now(),
                ),
            ).fetchone()
            if row is None:
                raise Conflict(
                    f"factory {factory_id} has a machine {fields['name']!r} on line "
                    f"{fields['line']!r}"
                )
            machine_id = int(row[0])
            write_entry(
                conn, AuditEntry(actor, "machine.create", "machine", str(machine_id), dict(fields))
            )
            created = _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
        assert created is not None
        return created

    def update_machine(
        self, machine_id: int, changes: Mapping[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (line, name, type, status); None when there is no such machine."""
        try:
            with self._write() as conn:
                current = _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
                if current is None:
                    return None
                renamed = any(k in changes and changes[k] != current[k] for k in ("line", "name"))
                if renamed and current["sensors"]:
                    raise Conflict(
                        f"machine {machine_id} has {current['sensors']} sensor(s) whose keys "
                        "are line/machine/sensor: its line and name cannot change while it "
                        "has sensors"
                    )
                if changes:
                    sets = ", ".join(f"{column} = ?" for column in changes)
                    conn.execute(
                        f"UPDATE machines SET {sets} WHERE id = ?", (*changes.values(), machine_id)
                    )
                write_entry(
                    conn,
                    AuditEntry(actor, "machine.update", "machine", str(machine_id), dict(changes)),
                )
                return _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
        except Exception as exc:
            if unique_violation(exc):
                raise Conflict(
                    f"the factory has a machine {changes.get('name')!r} on line "
                    f"{changes.get('line')!r}"
                ) from None
            raise

    def delete_machine(self, machine_id: int, actor: Who) -> bool:
        """Delete a machine without sensors; False when there is none, Conflict otherwise."""
        with self._write() as conn:
            row = _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
            if row is None:
                return False
            if row["sensors"]:
                raise Conflict(
                    f"machine {machine_id} has {row['sensors']} sensor(s); delete them first"
                )
            conn.execute("DELETE FROM machines WHERE id = ?", (machine_id,))
            write_entry(
                conn,
                AuditEntry(
                    actor,
                    "machine.delete",
                    "machine",
                    str(machine_id),
                    {"line": row["line"], "name": row["name"]},
                ),
            )
        return True

    # -- sensors -------------------------------------------------------------------------

    def create_sensor(self, fields: Mapping[str, Any], actor: Who) -> dict[str, Any]:
        """``fields``: machine_id, name, unit, min_threshold, max_threshold. The key is
        the machine's line and name and the sensor's name."""
        with self._write() as conn:
            machine_id = int(fields["machine_id"])
            machine = conn.execute(
                "SELECT factory_id, line, name FROM machines WHERE id = ?", (machine_id,)
            ).fetchone()
            if machine is None:
                raise Unknown("machine_id", machine_id)
            factory_id = int(machine[0])
            key = f"{machine[1]}/{machine[2]}/{fields['name']}"
            low, high = fields.get("min_threshold"), fields.get("max_threshold")
            row = conn.execute(
                "INSERT INTO sensors (machine_id, factory_id, key, name, unit, min_threshold, "
                "max_threshold, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (factory_id, key) DO NOTHING RETURNING id",
                (machine_id, factory_id, key, fields["name"], fields.get("unit"), low, high, now()),
            ).fetchone()
            if row is None:
                raise Conflict(f"machine {machine_id} has a sensor {fields['name']!r} ({key})")
            sensor_id = int(row[0])
            if low is not None or high is not None:
                _bump(conn, factory_id)
            write_entry(
                conn,
                AuditEntry(
                    actor, "sensor.create", "sensor", str(sensor_id), {**fields, "key": key}
                ),
            )
            created = _one(conn, SENSOR_SELECT + " WHERE s.id = ?", (sensor_id,))
        assert created is not None
        # Ingest in this process finds it at once; other processes look a key up in the
        # database when their cache misses it.
        self._sensor_cache.get(factory_id, {})[key] = sensor_id
        return created

    def update_sensor(
        self, sensor_id: int, changes: Mapping[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (name, unit: what a person calls it; the key stays)."""
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM sensors WHERE id = ?", (sensor_id,)).fetchone():
                return None
            if changes:
                sets = ", ".join(f"{column} = ?" for column in changes)
                conn.execute(
                    f"UPDATE sensors SET {sets} WHERE id = ?", (*changes.values(), sensor_id)
                )
            write_entry(
                conn, AuditEntry(actor, "sensor.update", "sensor", str(sensor_id), dict(changes))
            )
            return _one(conn, SENSOR_SELECT + " WHERE s.id = ?", (sensor_id,))

    def delete_sensor(self, sensor_id: int, actor: Who) -> dict[str, int] | None:
        """Delete a sensor with its readings, back-fill keys, rollups, anomalies, rules and
        alerts (with their journal); how many rows of each went, None: no such sensor.

        Data a gateway sends for its key later makes a new sensor, as on first data."""
        with self._write() as conn:
            # Locked first (PostgreSQL): a batch storing rows for this sensor commits before
            # the deletes below look, and none starts until this transaction ends.
            row = conn.execute(
                f"SELECT factory_id, key FROM sensors WHERE id = ?{self._LOCK_FOR_DELETE}",
                (sensor_id,),
            ).fetchone()
            if row is None:
                return None
            factory_id, key = int(row[0]), str(row[1])
            # Forget the key before the commit as well as after: an ingest of this process
            # that gets the writer next resolves it afresh (a new sensor), never to this id.
            self._sensor_cache.get(factory_id, {}).pop(key, None)
            tables = present_tables(
                conn, {t for t, _ in _SENSOR_DATA} | {"alerts", "alert_journal"}
            )
            removed: dict[str, int] = {}
            if {"alerts", "alert_journal"} <= tables:
                cur = conn.execute(
                    "DELETE FROM alert_journal WHERE alert_id IN "
                    "(SELECT id FROM alerts WHERE sensor_id = ?)",
                    (sensor_id,),
                )
                removed["alert_journal"] = max(cur.rowcount, 0)
            if "alerts" in tables:
                cur = conn.execute("DELETE FROM alerts WHERE sensor_id = ?", (sensor_id,))
                removed["alerts"] = max(cur.rowcount, 0)
            for table, column in _SENSOR_DATA:
                if table in tables:
                    cur = conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (sensor_id,))
                    removed[table] = max(cur.rowcount, 0)
            if isinstance(self, RollupsMixin):
                self.delete_rollups(conn, sensor_id)
            conn.execute("DELETE FROM sensors WHERE id = ?", (sensor_id,))
            _bump(conn, factory_id)
            write_entry(
                conn,
                AuditEntry(
                    actor, "sensor.delete", "sensor", str(sensor_id), {"key": key, **removed}
                ),
            )
        self._sensor_cache.get(factory_id, {}).pop(key, None)
        with self._touch_lock:
            self._touched.pop(sensor_id, None)
        return removed

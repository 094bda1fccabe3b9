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

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hub.storage.changelog import AuditEntry, Who, write_entry
from hub.storage.dialect import Dialect
from hub.storage.model import Conflict, SensorCache, StorageError
from hub.storage.selects import FACTORY_SELECT, MACHINE_SELECT, SENSOR_SELECT
from hub.storage.sqlbase import Conn, Database, row_dict
from shared.timeutil import now


class Unknown(StorageError):
    """A body names a parent (factory_id, machine_id) that does not exist."""

    def __init__(self, field: str, ident: int) -> None:
        super().__init__(f"no {field.removesuffix('_id')} with id {ident}")
        self.field = field
        self.ident = ident


def _one(conn: Conn, sql: str, params: list[Any] | tuple[Any, ...]) -> dict[str, Any] | None:
    cur = conn.execute(sql, params)
    row = cur.fetchone()
    return None if row is None else row_dict(cur, row)


def _bump(conn: Conn, factory_id: int) -> None:
    # Gateways of the factory fetch their config again: a sensor with bounds came or went.
    conn.execute(
        "UPDATE factories SET config_version = config_version + 1 WHERE id = ?", (factory_id,)
    )


class SensorData(Protocol):
    """A concern that keeps rows of a sensor: it removes them inside the deleting
    transaction and says how many of each table went."""

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int] | None: ...


class MachineService(Protocol):
    """What a machine's status and deletion mean for out of service (hub.storage.service),
    inside the changing transaction."""

    def machine_status(
        self, conn: Conn, machine_id: int, factory_id: int, status: str, who: Who
    ) -> None: ...

    def forget_machine(self, conn: Conn, machine_id: int) -> None: ...


class Crud:
    """Operators' edits of factories, machines and sensors. A sensor's deletion takes its
    data from each concern that keeps some, in the order given (children before parents)."""

    def __init__(
        self,
        db: Database,
        dialect: Dialect,
        cache: SensorCache,
        sensor_data: Sequence[SensorData],
        service: MachineService,
    ) -> None:
        self._db = db
        self._service = service
        self._dialect = dialect
        self._cache = cache
        self._sensor_data = tuple(sensor_data)

    # -- factories -----------------------------------------------------------------------

    def create_factory(self, name: str, location: str | None, actor: Who) -> dict[str, Any]:
        with self._db.write() as conn:
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
            with self._db.write() as conn:
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
            if self._dialect.is_unique_violation(exc):
                raise Conflict(f"a factory named {changes.get('name')!r} exists") from None
            raise

    def delete_factory(self, factory_id: int, actor: Who) -> bool:
        """Delete an empty factory; False when there is none, Conflict while it has
        machines or gateways (their data would lose its place in the model)."""
        with self._db.write() as conn:
            row = _one(conn, FACTORY_SELECT + " WHERE f.id = ?", (factory_id,))
            if row is None:
                return False
            if row["machines"] or row["gateways"]:
                raise Conflict(
                    f"factory {factory_id} has {row['machines']} machine(s) and "
                    f"{row['gateways']} gateway(s); delete or move them first"
                )
            # A user limited to this factory would otherwise lose the limit, and see all.
            scoped = conn.execute(
                "SELECT count(*) FROM user_factories WHERE factory_id = ?", (factory_id,)
            ).fetchone()[0]
            tokens = conn.execute(
                "SELECT count(*) FROM token_factories tf JOIN tokens t ON t.id = tf.token_id "
                "WHERE tf.factory_id = ? AND NOT t.revoked",
                (factory_id,),
            ).fetchone()[0]
            if tokens:
                # Like a user's: the token would lose its limit, and see every factory.
                raise Conflict(
                    f"factory {factory_id} is in the scope of {tokens} token(s); revoke them first"
                )
            if scoped:
                raise Conflict(
                    f"factory {factory_id} is in the scope of {scoped} user(s); "
                    "change their factories first"
                )
            # Revoked tokens never work again: their limit may go with the factory.
            conn.execute("DELETE FROM token_factories WHERE factory_id = ?", (factory_id,))
            conn.execute("DELETE FROM factories WHERE id = ?", (factory_id,))
            write_entry(
                conn,
                AuditEntry(
                    actor, "factory.delete", "factory", str(factory_id), {"name": row["name"]}
                ),
            )
        self._cache.pop(factory_id, None)
        return True

    # -- machines ------------------------------------------------------------------------

    def create_machine(self, fields: Mapping[str, Any], actor: Who) -> dict[str, Any]:
        """``fields``: factory_id, line, name, type, status."""
        with self._db.write() as conn:
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
            self._service.machine_status(conn, machine_id, factory_id, fields["status"], actor)
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
            with self._db.write() as conn:
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
                if "status" in changes:
                    status, factory_id = changes["status"], int(current["factory_id"])
                    self._service.machine_status(conn, machine_id, factory_id, status, actor)
                write_entry(
                    conn,
                    AuditEntry(actor, "machine.update", "machine", str(machine_id), dict(changes)),
                )
                return _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
        except Exception as exc:
            if self._dialect.is_unique_violation(exc):
                raise Conflict(
                    f"the factory has a machine {changes.get('name')!r} on line "
                    f"{changes.get('line')!r}"
                ) from None
            raise

    def delete_machine(self, machine_id: int, actor: Who) -> bool:
        """Delete a machine without sensors; False when there is none, Conflict otherwise."""
        with self._db.write() as conn:
            row = _one(conn, MACHINE_SELECT + " WHERE m.id = ?", (machine_id,))
            if row is None:
                return False
            if row["sensors"]:
                raise Conflict(
                    f"machine {machine_id} has {row['sensors']} sensor(s); delete them first"
                )
            self._service.forget_machine(conn, machine_id)
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
        with self._db.write() as conn:
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
        self._cache.get(factory_id, {})[key] = sensor_id
        return created

    def update_sensor(
        self, sensor_id: int, changes: Mapping[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        """Apply ``changes`` (name, unit: what a person calls it; the key stays)."""
        with self._db.write() as conn:
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
        with self._db.write() as conn:
            # Locked first (PostgreSQL): a batch storing rows for this sensor commits before
            # the deletes below look, and none starts until this transaction ends.
            row = conn.execute(
                f"SELECT factory_id, key FROM sensors WHERE id = ?{self._dialect.lock_for_delete}",
                (sensor_id,),
            ).fetchone()
            if row is None:
                return None
            factory_id, key = int(row[0]), str(row[1])
            # Forget the key before the commit as well as after: an ingest of this process
            # that gets the writer next resolves it afresh (a new sensor), never to this id.
            self._cache.get(factory_id, {}).pop(key, None)
            removed: dict[str, int] = {}
            for concern in self._sensor_data:
                removed.update(concern.delete_sensor(conn, sensor_id) or {})
            conn.execute("DELETE FROM sensors WHERE id = ?", (sensor_id,))
            _bump(conn, factory_id)
            write_entry(
                conn,
                AuditEntry(
                    actor, "sensor.delete", "sensor", str(sensor_id), {"key": key, **removed}
                ),
            )
        self._cache.get(factory_id, {}).pop(key, None)
        return removed

"""The write path of a sync batch: sensors created on first data, readings stored once per
(gateway, seq), edge alerts upserted, the gateway's report recorded, all in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hub.storage.dialect import Dialect, Fold
from hub.storage.model import (
    GatewayReport,
    ReadingRow,
    SensorCache,
    StorageError,
    StoreResult,
    TokenRevoked,
    reading_id,
)
from hub.storage.sqlbase import Conn, Database
from shared.timeutil import now
from shared.topics import split_key
from shared.wire import WireAlert, WireMark, WireReading

_TOKEN_VALID = "AND EXISTS (SELECT 1 FROM tokens WHERE id = ? AND NOT revoked) "

# Each try needs a sensor of the batch deleted between reading its id and locking it.
_RESOLVE_TRIES = 5


class EdgeAlerts(Protocol):
    """Where a batch's edge alerts go, in its transaction (hub.storage.alerts)."""

    def record_edge_alerts(
        self, conn: Conn, gateway_id: int, ids: dict[str, int], alerts: Sequence[WireAlert]
    ) -> None: ...

    def track_peaks(
        self,
        conn: Conn,
        gateway_id: int,
        ids: dict[str, int],
        readings: Sequence[WireReading],
        alerts: Sequence[WireAlert],
    ) -> None: ...


class GatewaySync(Protocol):
    """What follows a gateway's sync, in the batch's transaction (hub.storage.offline)."""

    def gateway_synced(self, conn: Conn, gateway_id: int) -> None: ...


class Ingest:
    """A batch in, all or nothing. ``rollups``, ``alerts`` and ``offline`` are updated inside
    the batch's own transaction: the readings' folds, the edge alerts, and the clearing of
    the gateway's offline alert."""

    def __init__(
        self,
        db: Database,
        dialect: Dialect,
        cache: SensorCache,
        rollups: Fold,
        alerts: EdgeAlerts,
        offline: GatewaySync,
    ) -> None:
        self._db = db
        self._dialect = dialect
        self._cache = cache
        self._rollups = rollups
        self._alerts = alerts
        self._offline = offline
        # Usual batches in one go where the engine can (the dialect's ``store_usual``).
        self.at_once = True

    def insert_rows(self, conn: Conn, rows: list[ReadingRow]) -> int:
        """Insert rows, skipping ids already stored, folded into the rollups in ``conn``'s
        transaction; returns how many were new."""
        return self._dialect.insert_readings(conn, rows, self._rollups)

    def _resolve_sensors(
        self, conn: Conn, factory_id: int, readings: Sequence[WireReading]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Sensor ids for every key in ``readings``: (all ids, ids created just now). Each id
        is locked against deletion until the batch commits (the dialect's ``lock_sensors``):
        a batch and the deletion of one of its sensors run one after the other, never
        interleaved."""
        cache = self._cache.get(factory_id)
        for _ in range(_RESOLVE_TRIES):
            if cache is None:
                # Before this batch inserts anything: the cache gets committed sensors only.
                rows = conn.execute(
                    "SELECT key, id FROM sensors WHERE factory_id = ?", (factory_id,)
                ).fetchall()
                cache = {str(k): int(i) for k, i in rows}
                self._cache[factory_id] = cache
            used = sorted({cache[r.key] for r in readings if r.key in cache})
            if len(self._dialect.lock_sensors(conn, used)) == len(used):
                break
            cache = None  # a sensor was deleted (by this or another hub process)
        else:
            raise StorageError("the sensors of this batch keep being deleted; send it again")
        missing: dict[str, str | None] = {}
        for r in readings:
            if r.key in cache:
                continue
            # First unit seen for a new key wins, a later one fills in a missing unit.
            if r.key not in missing or missing[r.key] is None:
                missing[r.key] = r.unit
        if not missing:
            return cache, {}
        created: dict[str, int] = {}
        ts = now()
        # In key order: two transactions creating overlapping sensors take their row locks
        # in the same order and cannot deadlock (PostgreSQL runs batches concurrently).
        for key in sorted(missing):
            line, machine, sensor = split_key(key)
            conn.execute(
                "INSERT INTO machines (factory_id, line, name, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (factory_id, line, name) DO NOTHING",
                (factory_id, line, machine, ts),
            )
            machine_id = conn.execute(
                "SELECT id FROM machines WHERE factory_id = ? AND line = ? AND name = ?",
                (factory_id, line, machine),
            ).fetchone()[0]
            created[key] = self._create_sensor(
                conn, machine_id, factory_id, key, sensor, missing[key], ts
            )
        return {**cache, **created}, created

    def _create_sensor(
        self,
        conn: Conn,
        machine_id: int,
        factory_id: int,
        key: str,
        name: str,
        unit: str | None,
        ts: float,
    ) -> int:
        """The id of the factory's sensor ``key``, created unless another process did first;
        locked like the batch's other sensors."""
        for _ in range(_RESOLVE_TRIES):
            conn.execute(
                "INSERT INTO sensors (machine_id, factory_id, key, name, unit, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (factory_id, key) DO NOTHING",
                (machine_id, factory_id, key, name, unit, ts),
            )
            row = conn.execute(
                "SELECT id FROM sensors WHERE factory_id = ? AND key = ?", (factory_id, key)
            ).fetchone()
            # Another process's sensor of this key may be deleted before we lock it.
            if row is not None and self._dialect.lock_sensors(conn, [int(row[0])]):
                return int(row[0])
        raise StorageError(f"sensor {key!r} keeps being deleted; send the batch again")

    def store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert] = (),
        token_id: int | None = None,
    ) -> StoreResult:
        """``token_id``: the token that sent the batch; TokenRevoked, and nothing stored, when
        it or its gateway is revoked as the transaction commits."""
        return self._dialect.guard_batch(
            lambda: self._store(gateway_id, factory_id, readings, report, alerts, token_id),
            lambda: [r.ts for r in readings],
        )

    def _store(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert],
        token_id: int | None,
    ) -> StoreResult:
        usual = self._store_usual(gateway_id, factory_id, readings, report, alerts, token_id)
        if usual is not None:
            return usual
        with self._db.write() as conn:
            keyed: Sequence[WireReading] = readings
            if alerts:
                # An alert's sensor normally arrived with its reading; make sure it exists.
                keyed = [*readings, *(WireReading(0, a.key, 0.0, 0.0, None) for a in alerts)]
            ids, created = self._resolve_sensors(conn, factory_id, keyed)
            accepted = 0
            if readings:
                base = reading_id(gateway_id, 0)
                accepted = self.insert_rows(
                    conn,
                    [
                        (base + r.seq, ids[r.key], r.ts, r.value, gateway_id, r.seq)
                        for r in readings
                    ],
                )
            if readings:
                # Queued for the anomaly scan in the batch's transaction: stored means queued.
                self._dialect.queue_scans(conn, sorted({ids[r.key] for r in readings}))
            if alerts:
                self._alerts.record_edge_alerts(conn, gateway_id, ids, alerts)
            if readings:
                # An active alert's peak moves with its sensor's readings.
                self._alerts.track_peaks(conn, gateway_id, ids, readings, alerts)
            # The report, the rules version the answer carries and, since the token's lookup
            # may come from a per-process cache, the check that neither the token nor its
            # gateway is revoked (a primary-key probe), in one statement: no row, no batch.
            token_valid = "" if token_id is None else _TOKEN_VALID
            row = conn.execute(
                "UPDATE gateways SET last_seen = ?, backlog = ?, dropped = ?, dead_letters = ?, "
                f"agent_version = ? WHERE id = ? AND NOT revoked {token_valid}"
                "RETURNING (SELECT config_version FROM factories WHERE id = ?)",
                (
                    now(),
                    report.backlog,
                    report.dropped,
                    report.dead_letters,
                    report.agent_version,
                    gateway_id,
                    *(() if token_id is None else (token_id,)),
                    factory_id,
                ),
            ).fetchone()
            if row is None:
                raise TokenRevoked("the batch's token or gateway is revoked")
            version = row[0]
            self._offline.gateway_synced(conn, gateway_id)
        if created:
            self._cache.setdefault(factory_id, {}).update(created)
        return StoreResult(
            accepted=accepted, duplicates=len(readings) - accepted, config_version=int(version)
        )

    def _store_usual(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert],
        token_id: int | None,
    ) -> StoreResult | None:
        """The fleet's steady state, where the engine can store it at once (the dialect's
        ``store_usual``): readings of sensors the cache knows, no edge alert. None when the
        batch goes step by step (:meth:`_store`), nothing written."""
        cache = self._cache.get(factory_id)
        if alerts or not readings or cache is None or not self.at_once:
            return None
        if not self._dialect.stores_usual:
            return None
        try:
            ids = [cache[r.key] for r in readings]
        except KeyError:
            return None  # a new sensor: made step by step
        base = reading_id(gateway_id, 0)
        rows = [
            (base + r.seq, sid, r.ts, r.value, gateway_id, r.seq)
            for r, sid in zip(readings, ids, strict=True)
        ]
        done = self._dialect.store_usual(
            gateway_id, factory_id, rows, sorted(set(ids)), report, token_id, self._rollups
        )
        if done is None:
            return None
        return StoreResult(
            accepted=done.accepted,
            duplicates=len(readings) - done.accepted,
            config_version=done.config_version,
        )

    def apply_marks(self, factory_id: int, marks: Sequence[WireMark]) -> int:
        """Sparkplug B stale/fresh marks of a batch (shared.wire.WireMark): each sets its
        sensor's ``stale`` flag unless the sensor holds a later mark already. Marks for keys
        the factory has no sensor for change nothing. Returns how many sensors changed."""
        if not marks:
            return 0
        changed = 0
        with self._db.write() as conn:
            # In key order, as sensors are created: concurrent batches lock rows alike.
            for m in sorted(marks, key=lambda m: m.key):
                cur = conn.execute(
                    "UPDATE sensors SET stale = ?, stale_at = ? "
                    "WHERE factory_id = ? AND key = ? AND stale_at <= ?",
                    (m.stale, m.at, factory_id, m.key, m.at),
                )
                changed += max(cur.rowcount, 0)
        return changed

"""The one seam to the database: every SQL statement of the hub lives in this module.

Handlers and the CLI speak to :class:`Storage` in domain terms (gateways, tokens, batches,
series), so a PostgreSQL backend can replace this module without touching them.

SQLite runs in WAL mode: readers never block the writer and a commit is one fsync-free
append (``synchronous=NORMAL``: a committed transaction survives a crash of the process;
only an OS crash or power cut can lose the last few). Robyn runs sync handlers on several
threads and a sqlite3 connection must not be used by two of them at once.

Connections are never tied to threads: Robyn calls handlers from its Rust worker threads,
and each call gets a fresh Python thread state, so a ``threading.local`` connection would be
opened anew (and leaked) on every request, its page cache cold. Instead there is one writer
connection, used under a lock by whoever writes, whose cache stays warm across ingest batches,
and a pool of reader connections, each lent to one call at a time. Writes serialise on
``BEGIN IMMEDIATE`` (waiting up to ``busy_timeout`` for other processes such as the CLI)
instead of failing late on lock upgrade.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from hub.auth import Role, TokenRecord
from shared.timeutil import now
from shared.topics import split_key
from shared.wire import WireAlert, WireReading

SCHEMA_VERSION = 2
# Bits of a reading id taken by the gateway's seq (see the readings table): 2^40 seqs is
# 35 years of one gateway at 1,000 readings/s.
SEQ_BITS = 40

_SCHEMA = """
CREATE TABLE IF NOT EXISTS factories (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    created_at      REAL NOT NULL,
    -- Bumped by every threshold change of one of its sensors. Gateways of the factory see
    -- it in each ingest answer and fetch their config when it moves.
    config_version  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS machines (
    id          INTEGER PRIMARY KEY,
    factory_id  INTEGER NOT NULL REFERENCES factories(id),
    line        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    UNIQUE (factory_id, line, name)
);
CREATE TABLE IF NOT EXISTS sensors (
    id             INTEGER PRIMARY KEY,
    machine_id     INTEGER NOT NULL REFERENCES machines(id),
    factory_id     INTEGER NOT NULL REFERENCES factories(id),
    key            TEXT NOT NULL,
    name           TEXT NOT NULL,
    unit           TEXT,
    min_threshold  REAL,
    max_threshold  REAL,
    deadband       REAL NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    UNIQUE (factory_id, key)
);
CREATE INDEX IF NOT EXISTS sensors_machine ON sensors (machine_id);
CREATE INDEX IF NOT EXISTS sensors_key ON sensors (key);
CREATE TABLE IF NOT EXISTS gateways (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    factory_id     INTEGER NOT NULL REFERENCES factories(id),
    created_at     REAL NOT NULL,
    last_seen      REAL,
    backlog        INTEGER NOT NULL DEFAULT 0,
    dropped        INTEGER NOT NULL DEFAULT 0,
    dead_letters   INTEGER NOT NULL DEFAULT 0,
    agent_version  TEXT NOT NULL DEFAULT '',
    revoked        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('gateway', 'read', 'admin')),
    gateway_id  INTEGER REFERENCES gateways(id),
    created_at  REAL NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0,
    CHECK ((role = 'gateway') = (gateway_id IS NOT NULL))
);
-- No foreign keys on readings: the hot insert path should not pay a lookup per row, and
-- sensor ids come from this module's own resolution, never from the client.
-- id = gateway_id * 2^40 + seq (reading_id()). A (gateway, seq) pair has one id, so
-- INSERT OR IGNORE on the rowid stores it once, without a separate UNIQUE index to keep up
-- (1.5x the insert rate), and each gateway's readings append at the end of its own id range.
CREATE TABLE IF NOT EXISTS readings (
    id          INTEGER PRIMARY KEY,
    sensor_id   INTEGER NOT NULL,
    ts          REAL NOT NULL,
    value       REAL NOT NULL,
    gateway_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_sensor_ts ON readings (sensor_id, ts);
-- The background anomaly scan: the last scan per sensor, and every anomaly it found (each
-- reading once, with the z-score of the scan that first flagged it).
CREATE TABLE IF NOT EXISTS anomaly_scans (
    sensor_id   INTEGER PRIMARY KEY,
    scanned_at  REAL NOT NULL,
    method      TEXT NOT NULL,
    threshold   REAL NOT NULL,
    analyzed    INTEGER NOT NULL,
    statistics  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS anomalies (
    id           INTEGER PRIMARY KEY,
    sensor_id    INTEGER NOT NULL,
    reading_id   INTEGER NOT NULL,
    ts           REAL NOT NULL,
    value        REAL NOT NULL,
    z_score      REAL NOT NULL,
    idx          INTEGER NOT NULL,
    method       TEXT NOT NULL,
    threshold    REAL NOT NULL,
    detected_at  REAL NOT NULL,
    UNIQUE (sensor_id, reading_id)
);
CREATE INDEX IF NOT EXISTS anomalies_sensor_ts ON anomalies (sensor_id, ts);
-- Alerts raised at the edge. A gateway sends an alert when it opens and again when it
-- closes: (gateway_id, alert_id) makes both an upsert, so re-sent batches change nothing.
CREATE TABLE IF NOT EXISTS edge_alerts (
    id               INTEGER PRIMARY KEY,
    gateway_id       INTEGER NOT NULL,
    alert_id         INTEGER NOT NULL,
    sensor_id        INTEGER NOT NULL,
    rule             TEXT NOT NULL,
    breach_type      TEXT NOT NULL,
    severity         TEXT NOT NULL,
    threshold_value  REAL NOT NULL,
    value            REAL NOT NULL,
    opened_at        REAL NOT NULL,
    closed_at        REAL,
    reading_seq      INTEGER,
    received_at      REAL NOT NULL,
    UNIQUE (gateway_id, alert_id)
);
CREATE INDEX IF NOT EXISTS edge_alerts_sensor ON edge_alerts (sensor_id, opened_at);
"""


# Columns added after schema version 1: (table, column, definition). CREATE TABLE above
# has them for a new database; an older one gets them by ALTER TABLE in init_schema.
_ADDED_COLUMNS = (
    ("factories", "config_version", "INTEGER NOT NULL DEFAULT 0"),
    ("sensors", "deadband", "REAL NOT NULL DEFAULT 0"),
)


class StorageError(Exception):
    """A storage problem worded for an operator (schema too new, unwritable path...)."""


class Conflict(StorageError):
    """The thing to create exists already."""


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """What a batch says about its gateway besides the readings."""

    backlog: int
    dropped: int
    dead_letters: int
    agent_version: str


@dataclass(frozen=True, slots=True)
class StoreResult:
    accepted: int
    duplicates: int
    config_version: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    min: float | None
    max: float | None
    deadband: float = 0.0


@dataclass(frozen=True, slots=True)
class FoundAnomaly:
    """One anomaly of a scan, tied to the reading it is about."""

    reading_id: int
    ts: float
    value: float
    z_score: float
    index: int


def _row_dict(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: row[i] for i, col in enumerate(cursor.description)}


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    return [_row_dict(cursor, row) for row in cursor.fetchall()]


class Storage:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None  # opened under _write_lock
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._own: sqlite3.Connection | None = None
        # factory_id -> {sensor key -> sensor id}. Sensors are never deleted, so an entry
        # never goes stale; entries are added only after the transaction that made them commits.
        self._sensor_cache: dict[int, dict[str, int]] = {}
        # Sensors touched by ingest in this process, by batch generation (anomaly worker).
        self._touch_lock = threading.Lock()
        self._generation = 0
        self._touched: dict[int, int] = {}

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
            # check_same_thread=False only so close() can close every thread's connection;
            # each connection is used by the thread that opened it.
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint every ~40 MB of WAL instead of SQLite's default ~4 MB: ingest rewrites
            # the same index pages batch after batch, and each checkpoint copies them into the
            # database again. Measured on a 1M-reading drain: 108k -> 146k readings/s. The WAL
            # is truncated back to 64 MB after a checkpoint so it cannot stay large.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from None
        with self._lock:
            self._all.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """A connection of the caller's own, for tests and one-off tools: never one that
        requests use. Closed by :meth:`close`."""
        if self._own is None:
            self._own = self._connect()
        return self._own

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads, this call's alone until it returns to the pool."""
        try:
            conn = self._idle_readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._idle_readers.put(conn)

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchone()

    def _writer_conn(self) -> sqlite3.Connection:
        """The one writer connection, opened on first use; call with _write_lock held."""
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # Threads of this process queue on a lock, which hands over at once; SQLite's busy
        # handler would make them poll with sleeps of up to 25 ms. busy_timeout still
        # covers other processes (the CLI adding a gateway while the hub runs).
        with self._write_lock:
            conn = self._writer_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
            self._own = None
        with self._write_lock:
            self._writer = None
        self._idle_readers = queue.SimpleQueue()
        for conn in conns:
            conn.close()

    def init_schema(self) -> None:
        version = self._fetchone("PRAGMA user_version")[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {self.path} has schema version {version}; this edge-hub knows "
                f"{SCHEMA_VERSION}. Upgrade edge-hub."
            )
        with self._write() as c:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            for table, column, definition in _ADDED_COLUMNS:
                present = {row[1] for row in c.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (at a clean stop)."""
        with self._write_lock:
            self._writer_conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def ping(self) -> bool:
        return bool(self._fetchone("SELECT 1")[0] == 1)

    # -- factories, gateways, tokens -------------------------------------------------

    @staticmethod
    def _factory_id(conn: sqlite3.Connection, name: str) -> int:
        conn.execute(
            "INSERT OR IGNORE INTO factories (name, created_at) VALUES (?, ?)", (name, now())
        )
        row = conn.execute("SELECT id FROM factories WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def add_gateway(self, name: str, factory: str, token_hash: str, *, rotate: bool = False) -> int:
        """Register gateway ``name`` in ``factory`` with a token; returns the gateway row id.

        ``rotate``: the gateway may exist (in the same factory); its old tokens are revoked.
        Conflict when it exists and ``rotate`` is false, or exists in another factory.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT g.id, f.name FROM gateways g JOIN factories f ON f.id = g.factory_id "
                "WHERE g.name = ?",
                (name,),
            ).fetchone()
            if row is not None:
                gateway_id, current_factory = int(row[0]), str(row[1])
                if not rotate:
                    raise Conflict(f"gateway {name!r} already exists (factory {current_factory!r})")
                if current_factory != factory:
                    raise Conflict(
                        f"gateway {name!r} belongs to factory {current_factory!r}, not {factory!r}"
                    )
                conn.execute("UPDATE tokens SET revoked = 1 WHERE gateway_id = ?", (gateway_id,))
                conn.execute("UPDATE gateways SET revoked = 0 WHERE id = ?", (gateway_id,))
            else:
                factory_id = self._factory_id(conn, factory)
                cur = conn.execute(
                    "INSERT INTO gateways (name, factory_id, created_at) VALUES (?, ?, ?)",
                    (name, factory_id, now()),
                )
                gateway_id = cast(int, cur.lastrowid)
            conn.execute(
                "INSERT INTO tokens (hash, role, gateway_id, created_at) "
                "VALUES (?, 'gateway', ?, ?)",
                (token_hash, gateway_id, now()),
            )
        return gateway_id

    def add_token(self, role: Role, token_hash: str) -> int:
        if role == "gateway":
            raise ValueError("gateway tokens are made by add_gateway")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO tokens (hash, role, created_at) VALUES (?, ?, ?)",
                (token_hash, role, now()),
            )
            return cast(int, cur.lastrowid)

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self._fetchone(
            "SELECT t.id, t.hash, t.role, t.revoked, g.id, g.name, g.factory_id, g.revoked "
            "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id WHERE t.hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        return TokenRecord(
            id=row[0],
            hash=row[1],
            role=row[2],
            revoked=bool(row[3]) or bool(row[7]),
            gateway_id=row[4],
            gateway_name=row[5],
            factory_id=row[6],
        )

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token's id, role, gateway, creation time and state; never the hash."""
        return self._all_dicts(
            "SELECT t.id, t.role, g.name AS gateway, t.created_at, "
            "(t.revoked OR coalesce(g.revoked, 0)) AS revoked "
            "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id ORDER BY t.id"
        )

    def revoke_token(self, token_id: int) -> bool:
        """Revoke one token (its next request gets 401); False if there is no such token."""
        with self._write() as conn:
            cur = conn.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,))
        return cur.rowcount > 0

    def revoke_gateway(self, name: str) -> bool:
        """Revoke gateway ``name`` and all its tokens; False if there is no such gateway.

        Its data stays. ``add_gateway(..., rotate=True)`` re-enables it with a new token.
        """
        with self._write() as conn:
            row = conn.execute("SELECT id FROM gateways WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE gateways SET revoked = 1 WHERE id = ?", (row[0],))
            conn.execute("UPDATE tokens SET revoked = 1 WHERE gateway_id = ?", (row[0],))
        return True

    # -- ingest -----------------------------------------------------------------------

    def _resolve_sensors(
        self, conn: sqlite3.Connection, factory_id: int, readings: Sequence[WireReading]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Sensor ids for every key in ``readings``: (all ids, ids created just now)."""
        cache = self._sensor_cache.get(factory_id)
        if cache is None:
            cache = dict(
                conn.execute("SELECT key, id FROM sensors WHERE factory_id = ?", (factory_id,))
            )
            self._sensor_cache[factory_id] = cache
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
        for key, unit in missing.items():
            line, machine, sensor = split_key(key)
            conn.execute(
                "INSERT OR IGNORE INTO machines (factory_id, line, name, created_at) "
                "VALUES (?, ?, ?, ?)",
                (factory_id, line, machine, ts),
            )
            machine_id = conn.execute(
                "SELECT id FROM machines WHERE factory_id = ? AND line = ? AND name = ?",
                (factory_id, line, machine),
            ).fetchone()[0]
            # Another process may have created it since the cache was filled.
            conn.execute(
                "INSERT OR IGNORE INTO sensors "
                "(machine_id, factory_id, key, name, unit, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (machine_id, factory_id, key, sensor, unit, ts),
            )
            created[key] = conn.execute(
                "SELECT id FROM sensors WHERE factory_id = ? AND key = ?", (factory_id, key)
            ).fetchone()[0]
        return {**cache, **created}, created

    def store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert] = (),
    ) -> StoreResult:
        """Store a batch all or nothing; each (gateway, seq) once, however often it comes."""
        with self._write() as conn:
            keyed: Sequence[WireReading] = readings
            if alerts:
                # An alert's sensor normally arrived with its reading; make sure it exists.
                keyed = [*readings, *(WireReading(0, a.key, 0.0, 0.0, None) for a in alerts)]
            ids, created = self._resolve_sensors(conn, factory_id, keyed)
            before = conn.total_changes
            base = gateway_id << SEQ_BITS
            conn.executemany(
                "INSERT OR IGNORE INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(base + r.seq, ids[r.key], r.ts, r.value, gateway_id, r.seq) for r in readings],
            )
            accepted = conn.total_changes - before
            if alerts:
                received = now()
                # A close never reopens, and a late "open" never erases a close.
                conn.executemany(
                    "INSERT INTO edge_alerts (gateway_id, alert_id, sensor_id, rule, breach_type, "
                    "severity, threshold_value, value, opened_at, closed_at, reading_seq, "
                    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (gateway_id, alert_id) DO UPDATE SET "
                    "severity = CASE WHEN edge_alerts.closed_at IS NULL "
                    "THEN excluded.severity ELSE edge_alerts.severity END, "
                    "value = CASE WHEN edge_alerts.closed_at IS NULL "
                    "THEN excluded.value ELSE edge_alerts.value END, "
                    "closed_at = coalesce(edge_alerts.closed_at, excluded.closed_at)",
                    [
                        (
                            gateway_id,
                            a.id,
                            ids[a.key],
                            a.rule,
                            a.breach_type,
                            a.severity,
                            a.threshold_value,
                            a.value,
                            a.opened_at,
                            a.closed_at,
                            a.reading_seq,
                            received,
                        )
                        for a in alerts
                    ],
                )
            conn.execute(
                "UPDATE gateways SET last_seen = ?, backlog = ?, dropped = ?, dead_letters = ?, "
                "agent_version = ? WHERE id = ?",
                (
                    now(),
                    report.backlog,
                    report.dropped,
                    report.dead_letters,
                    report.agent_version,
                    gateway_id,
                ),
            )
            version = conn.execute(
                "SELECT config_version FROM factories WHERE id = ?", (factory_id,)
            ).fetchone()[0]
        if created:
            self._sensor_cache.setdefault(factory_id, {}).update(created)
        with self._touch_lock:
            self._generation += 1
            for key in {r.key for r in readings}:
                self._touched[ids[key]] = self._generation
        return StoreResult(
            accepted=accepted, duplicates=len(readings) - accepted, config_version=int(version)
        )

    # -- read side ----------------------------------------------------------------------

    def _all_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._reader() as conn:
            return _dicts(conn.execute(sql, params))

    def _one_dict(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        with self._reader() as conn:
            cur = conn.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else _row_dict(cur, row)

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
        "f.name AS factory, s.unit, s.min_threshold, s.max_threshold, s.deadband, s.created_at "
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

    @staticmethod
    def _range(sensor_id: int, start: float | None, end: float | None) -> tuple[str, list[Any]]:
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

    def readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int
    ) -> list[tuple[int, float, float]]:
        """(reading id, ts, value), oldest first, at most ``limit``."""
        where, params = self._range(sensor_id, start, end)
        return self._fetchall(
            f"SELECT id, ts, value FROM readings WHERE {where} ORDER BY ts, id LIMIT ?",
            [*params, limit],
        )

    def series(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[tuple[float, float, float, float, int]]:
        """(bucket start, min, max, avg, count) per bucket, oldest first, at most ``limit``."""
        where, params = self._range(sensor_id, start, end)
        # ts >= 0 always, so CAST (truncation) is floor here.
        return self._fetchall(
            "SELECT CAST(ts / ? AS INTEGER) * ? AS b, min(value), max(value), avg(value), count(*) "
            f"FROM readings WHERE {where} GROUP BY b ORDER BY b LIMIT ?",
            [bucket, bucket, *params, limit],
        )

    def stats(
        self, sensor_id: int, start: float | None, end: float | None
    ) -> tuple[float | None, float | None, float | None, int, float | None, float | None]:
        """(min, max, avg, count, first ts, last ts) over the range."""
        where, params = self._range(sensor_id, start, end)
        row = self._fetchone(
            "SELECT min(value), max(value), avg(value), count(*), min(ts), max(ts) "
            f"FROM readings WHERE {where}",
            params,
        )
        return cast(
            tuple[float | None, float | None, float | None, int, float | None, float | None],
            tuple(row),
        )

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

    def gateway_row_id(self, name: str) -> int | None:
        row = self._fetchone("SELECT id FROM gateways WHERE name = ?", (name,))
        return None if row is None else int(row[0])

    def last_readings(self, sensor_id: int, limit: int) -> list[tuple[int, float, float]]:
        """The newest ``limit`` readings as (reading id, ts, value), oldest first."""
        rows = self._fetchall(
            "SELECT id, ts, value FROM readings WHERE sensor_id = ? "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            (sensor_id, limit),
        )
        rows.reverse()
        return rows

    # -- thresholds and gateway config ------------------------------------------------

    def set_thresholds(self, sensor_id: int, thresholds: Thresholds) -> int | None:
        """Set a sensor's thresholds; returns its factory's config version (None: no sensor).

        The version moves only when something changed, so repeating a PUT is a no-op.
        """
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
        return int(version)

    def gateway_config(self, name: str) -> tuple[int, list[dict[str, Any]]] | None:
        """(config version, rules) for gateway ``name``'s factory; None if no such gateway.

        Rules are the sensors with at least one bound: ``{"key", "min", "max", "deadband"}``.
        Version and rules come from one read transaction, so they always match.
        """
        with self._reader() as conn:
            conn.execute("BEGIN")
            row = conn.execute(
                "SELECT g.factory_id, f.config_version FROM gateways g "
                "JOIN factories f ON f.id = g.factory_id WHERE g.name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            rules = _dicts(
                conn.execute(
                    "SELECT key, min_threshold AS min, max_threshold AS max, deadband "
                    "FROM sensors WHERE factory_id = ? "
                    "AND (min_threshold IS NOT NULL OR max_threshold IS NOT NULL) ORDER BY key",
                    (row[0],),
                )
            )
            conn.execute("COMMIT")
        return int(row[1]), rules

    # -- anomaly scans ------------------------------------------------------------------

    def max_reading_id(self) -> int:
        """A watermark for sensors_with_new_readings: batches stored by this process so far.
        (Reading ids are per-gateway ranges, so they do not tell what is new.)"""
        with self._touch_lock:
            return self._generation

    def sensors_with_new_readings(self, after: int) -> list[int]:
        """Sensors that got readings after watermark ``after``; every sensor for 0 (the first
        round after a start, when this process has not seen what came before)."""
        if after == 0:
            return [int(r[0]) for r in self._fetchall("SELECT id FROM sensors ORDER BY id")]
        with self._touch_lock:
            return sorted(s for s, gen in self._touched.items() if gen > after)

    def store_anomaly_scan(
        self,
        sensor_id: int,
        method: str,
        threshold: float,
        analyzed: int,
        statistics: dict[str, Any],
        found: Sequence[FoundAnomaly],
    ) -> int:
        """Record a scan of one sensor; returns how many anomalies were new."""
        at = now()
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO anomaly_scans "
                "(sensor_id, scanned_at, method, threshold, analyzed, statistics) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sensor_id, at, method, threshold, analyzed, json.dumps(statistics)),
            )
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO anomalies (sensor_id, reading_id, ts, value, z_score, idx, "
                "method, threshold, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sensor_id,
                        a.reading_id,
                        a.ts,
                        a.value,
                        a.z_score,
                        a.index,
                        method,
                        threshold,
                        at,
                    )
                    for a in found
                ],
            )
            return conn.total_changes - before

    def anomaly_scan(self, sensor_id: int) -> dict[str, Any] | None:
        row = self._one_dict(
            "SELECT scanned_at, method, threshold, analyzed, statistics FROM anomaly_scans "
            "WHERE sensor_id = ?",
            (sensor_id,),
        )
        if row is not None:
            row["statistics"] = json.loads(row["statistics"])
        return row

    def edge_alerts(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts the edge raised for a sensor, newest first."""
        return self._all_dicts(
            "SELECT a.alert_id, g.name AS gateway_id, a.rule, a.breach_type, a.severity, "
            "a.threshold_value, a.value, a.opened_at, a.closed_at, a.reading_seq "
            "FROM edge_alerts a JOIN gateways g ON g.id = a.gateway_id "
            "WHERE a.sensor_id = ? ORDER BY a.opened_at DESC, a.id DESC LIMIT ?",
            (sensor_id, limit),
        )

    def stored_anomalies(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` stored anomalies of a sensor, oldest first."""
        rows = self._all_dicts(
            'SELECT reading_id, ts, value, z_score, idx AS "index", method, threshold, '
            "detected_at FROM anomalies WHERE sensor_id = ? ORDER BY ts DESC, reading_id DESC "
            "LIMIT ?",
            (sensor_id, limit),
        )
        rows.reverse()
        return rows

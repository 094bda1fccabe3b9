"""Steps 1 and 2 of the SQLite schema, and the healing of databases from before versions."""

from __future__ import annotations

import sqlite3

from hub.storage.migrations import statements

_V1 = """
CREATE TABLE IF NOT EXISTS factories (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    created_at      REAL NOT NULL
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
-- sensor ids come from storage's own resolution, never from the client.
-- id = gateway_id * 2^40 + seq (model.reading_id). A (gateway, seq) pair has one id, so
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
CREATE INDEX IF NOT EXISTS edge_alerts_sensor ON edge_alerts (sensor_id, opened_at)
"""


def v1(conn: sqlite3.Connection) -> None:
    # IF NOT EXISTS: databases from before versioning (user_version 0) already have tables.
    for statement in statements(_V1):
        conn.execute(statement)


# Version 2: the factory's config version (bumped by every threshold change of one of its
# sensors; gateways see it in each ingest answer and fetch their config when it moves) and a
# sensor's deadband. A database of version 0 may have either already.
_V2_COLUMNS = (
    ("factories", "config_version", "INTEGER NOT NULL DEFAULT 0"),
    ("sensors", "deadband", "REAL NOT NULL DEFAULT 0"),
)


def v2(conn: sqlite3.Connection) -> None:
    for table, column, definition in _V2_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


# The last version of the releases before numbered migrations. Those ran the whole schema
# script with CREATE TABLE IF NOT EXISTS at every start, so a database they left at version
# 1 or 2 may lack a table they added without a version bump. Such a database gets the
# first-release tables and the version-2 columns again (idempotent) before later steps.
LEGACY_VERSION = 2


def heal_legacy(conn: sqlite3.Connection) -> None:
    v1(conn)
    v2(conn)

"""Steps 3 to 11 of the SQLite schema (names and numbers: hub.storage.migrations.STEPS)."""

from __future__ import annotations

import re
import sqlite3

from hub.storage.migrations import fill_coarser, statements

# Step 3: the alarm tables. alert_rules holds the seeds' AlertRule per sensor (plus deadband
# and on-delay); alerts the fleet's alerts with their lifecycle state (one row per
# (gateway, the gateway's alert id); the partial unique index keeps at most one active
# gateway_offline alert per gateway, so hub processes racing to open it open it once);
# alert_journal every transition; alert_events the outbox the webhook sender reads, and
# webhook_cursors how far each URL has been delivered, with a lease so one process sends.
_ALARMS = """
CREATE TABLE alert_rules (
    id              INTEGER PRIMARY KEY,
    sensor_id       INTEGER NOT NULL,
    condition       text NOT NULL
                    CHECK (condition IN ('GREATER_THAN', 'LESS_THAN', 'OUT_OF_RANGE')),
    threshold       REAL NOT NULL,
    threshold_high  REAL,
    severity        text NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'CRITICAL')),
    enabled         INTEGER NOT NULL DEFAULT TRUE,
    deadband        REAL NOT NULL DEFAULT 0,
    delay_s         REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    CHECK ((condition = 'OUT_OF_RANGE') = (threshold_high IS NOT NULL))
);
CREATE INDEX alert_rules_sensor ON alert_rules (sensor_id);
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    kind             text NOT NULL,
    gateway_id       INTEGER NOT NULL,
    factory_id       INTEGER NOT NULL,
    sensor_id        INTEGER,
    rule_id          INTEGER,
    edge_alert_id    INTEGER,
    breach_type      text,
    severity         text NOT NULL,
    state            text NOT NULL CHECK (state IN ('active', 'cleared')),
    acknowledged     INTEGER NOT NULL DEFAULT FALSE,
    acknowledged_at  REAL,
    acknowledged_by  INTEGER,
    acknowledged_role text,
    shelved_until    REAL,
    opened_at        REAL NOT NULL,
    cleared_at       REAL,
    value            REAL,
    threshold_value  REAL,
    updated_at       REAL NOT NULL,
    UNIQUE (gateway_id, edge_alert_id)
);
CREATE UNIQUE INDEX alerts_gateway_offline ON alerts (gateway_id)
    WHERE kind = 'gateway_offline' AND state = 'active';
CREATE INDEX alerts_opened ON alerts (opened_at, id);
CREATE INDEX alerts_sensor ON alerts (sensor_id, opened_at);
CREATE INDEX alerts_active ON alerts (state, opened_at);
CREATE INDEX alerts_shelved ON alerts (shelved_until) WHERE shelved_until IS NOT NULL;
CREATE TABLE alert_journal (
    id        INTEGER PRIMARY KEY,
    alert_id  INTEGER NOT NULL,
    at        REAL NOT NULL,
    token_id  INTEGER,
    role      text NOT NULL,
    action    text NOT NULL,
    severity  text,
    comment   text
);
CREATE INDEX alert_journal_alert ON alert_journal (alert_id, id);
CREATE TABLE alert_events (
    id        INTEGER PRIMARY KEY,
    event_id  text NOT NULL UNIQUE,
    event     text NOT NULL,
    alert_id  INTEGER NOT NULL,
    at        REAL NOT NULL,
    payload   text NOT NULL
);
CREATE TABLE webhook_cursors (
    url          text PRIMARY KEY,
    last_event   INTEGER NOT NULL,
    lease_owner  text,
    lease_until  REAL
)
"""

# SQLite cannot alter a CHECK constraint: the tokens table is rebuilt with the operator role.
_TOKENS_WITH_OPERATOR = """
CREATE TABLE tokens_new (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('gateway', 'read', 'operator', 'admin')),
    gateway_id  INTEGER REFERENCES gateways(id),
    created_at  REAL NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0,
    CHECK ((role = 'gateway') = (gateway_id IS NOT NULL))
);
INSERT INTO tokens_new (id, hash, role, gateway_id, created_at, revoked)
    SELECT id, hash, role, gateway_id, created_at, revoked FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens
"""


def alarms(conn: sqlite3.Connection) -> None:
    for statement in statements(_ALARMS):
        conn.execute(statement)
    rebuild = statements(_TOKENS_WITH_OPERATOR)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tokens'").fetchone() is None:
        # A database from before tokens existed: the table is simply made with the new CHECK.
        rebuild = [rebuild[0], rebuild[-1]]
    for statement in rebuild:
        conn.execute(statement)


# Steps 4 and 9: a rollup tier holds one row per (sensor, bucket start): min, max, sum and
# count, and the first and last reading by (ts, id) with their ts and id (hub.storage.rollups
# says why). WITHOUT ROWID: the primary key is the table; an upsert touches one b-tree.
_TIER = """
CREATE TABLE {table} (
    sensor_id    INTEGER NOT NULL,
    bucket       REAL NOT NULL,
    min          REAL NOT NULL,
    max          REAL NOT NULL,
    sum          REAL NOT NULL,
    count        INTEGER NOT NULL,
    first_ts     REAL NOT NULL,
    first_id     INTEGER NOT NULL,
    first_value  REAL NOT NULL,
    last_ts      REAL NOT NULL,
    last_id      INTEGER NOT NULL,
    last_value   REAL NOT NULL,
    PRIMARY KEY (sensor_id, bucket)
) WITHOUT ROWID
"""

# What the retention job last measured per tier, read by /metrics in whichever hub process
# answers the scrape (the job runs in one of them; see hub.retention).
_RETENTION_STATUS = """
CREATE TABLE retention_status (
    tier         text PRIMARY KEY,
    rows         INTEGER NOT NULL,
    bytes        INTEGER,
    oldest       REAL,
    next_expiry  REAL,
    measured_at  REAL NOT NULL
)
"""

# SQLite's bare column next to min()/max() is not enough (two of each per group): window
# functions name the first and last row of each minute.
_FILL_MINUTES = (
    "INSERT INTO rollup_1m (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
    "first_value, last_ts, last_id, last_value) "
    "SELECT sensor_id, b, min(value), max(value), sum(value), count(*), min(ts), min(fid), "
    "min(fv), max(ts), min(lid), min(lv) FROM ("
    "SELECT sensor_id, b, ts, value, first_value(id) OVER w AS fid, "
    "first_value(value) OVER w AS fv, last_value(id) OVER w AS lid, "
    "last_value(value) OVER w AS lv FROM ("
    "SELECT sensor_id, CAST(ts / 60 AS INTEGER) * 60 AS b, id, ts, value FROM readings) "
    "WINDOW w AS (PARTITION BY sensor_id, b ORDER BY ts, id "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) GROUP BY sensor_id, b"
)


def rollups(conn: sqlite3.Connection) -> None:
    # Filled from the readings already stored, so an upgraded database answers series and
    # stats from the tiers at once, with the same numbers as before.
    for table in ("rollup_1m", "rollup_1h"):
        conn.execute(_TIER.format(table=table))
    conn.execute(_RETENTION_STATUS)
    conn.execute(_FILL_MINUTES)
    conn.execute(fill_coarser("rollup_1h", "rollup_1m", "CAST(bucket / 3600 AS INTEGER) * 3600"))


def half_day_tier(conn: sqlite3.Connection) -> None:
    conn.execute(_TIER.format(table="rollup_12h"))
    conn.execute(fill_coarser("rollup_12h", "rollup_1h", "CAST(bucket AS INTEGER) / 43200 * 43200"))


# Step 5: the operators' model edits (factory location; machine type and status, machines
# and factories made by ingest get none and OPERATIONAL), bulk_keys (one row per (sensor, ts)
# back-filled by POST /readings/bulk, its id the reading's in the range of gateway 0, so a
# re-posted body stores nothing twice) and audit_log (every change made with a person's
# token, hub.storage.audit).
_CRUD_COLUMNS = (
    ("factories", "location", "text"),
    ("machines", "type", "text"),
    (
        "machines",
        "status",
        "text NOT NULL DEFAULT 'OPERATIONAL' "
        "CHECK (status IN ('OPERATIONAL', 'MAINTENANCE', 'OFFLINE'))",
    ),
)

# bulk_keys AUTOINCREMENT: an id freed by deleting a sensor's back-filled readings is never
# handed out again (a reading id means one reading for as long as the database lives).
_CRUD = """
CREATE TABLE bulk_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor_id  INTEGER NOT NULL,
    ts         REAL NOT NULL,
    UNIQUE (sensor_id, ts)
);
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    token_id   INTEGER,
    role       text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    target_id  text,
    detail     text
);
CREATE INDEX audit_log_target ON audit_log (target, target_id, id);
CREATE INDEX audit_log_at ON audit_log (at, id)
"""

_ROWID_PK = re.compile(r"(\bid\s+INTEGER\s+PRIMARY\s+KEY)(?!\s+AUTOINCREMENT)", re.IGNORECASE)
_CREATE = re.compile(r"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?\"?sensors\"?", re.IGNORECASE)


def _sensor_ids_never_reused(conn: sqlite3.Connection) -> None:
    """Rebuild ``sensors`` as it is (columns, constraints, indexes) plus AUTOINCREMENT.
    Sensors can be deleted from step 5 on, and without it SQLite hands the largest id out
    again: a dashboard that kept ``/sensors/7`` would get another sensor's data instead of a
    404. PostgreSQL's identity never reuses an id, so both engines behave alike."""
    (table_sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sensors'"
    ).fetchone()
    new_sql, changed = _ROWID_PK.subn(r"\1 AUTOINCREMENT", table_sql, count=1)
    if not changed:
        return
    indexes = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sensors' "
            "AND sql IS NOT NULL"
        )
    ]
    columns = ", ".join(f'"{row[1]}"' for row in conn.execute("PRAGMA table_info(sensors)"))
    conn.execute(_CREATE.sub("CREATE TABLE sensors_new", new_sql, count=1))
    conn.execute(f"INSERT INTO sensors_new ({columns}) SELECT {columns} FROM sensors")
    # No table references sensors by foreign key, so dropping it checks nothing.
    conn.execute("DROP TABLE sensors")
    conn.execute("ALTER TABLE sensors_new RENAME TO sensors")
    for index_sql in indexes:
        conn.execute(index_sql)


def crud(conn: sqlite3.Connection) -> None:
    _sensor_ids_never_reused(conn)
    for table, column, definition in _CRUD_COLUMNS:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    for statement in statements(_CRUD):
        conn.execute(statement)


def stale_marks(conn: sqlite3.Connection) -> None:
    # stale: from the NDEATH of the sensor's Sparkplug B edge node (or DDEATH of its device)
    # until its next birth; stale_at: when the agent saw it, so a mark older than the stored
    # one changes nothing (Ingest.apply_marks).
    conn.execute("ALTER TABLE sensors ADD COLUMN stale BOOLEAN NOT NULL DEFAULT FALSE")
    conn.execute("ALTER TABLE sensors ADD COLUMN stale_at REAL NOT NULL DEFAULT 0")


# Step 7: console sessions (hub.storage.access), in the database so every hub process
# knows every session. Hashes only: a stolen copy of the database signs nobody in.
_SESSIONS = """
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)
"""


def sessions(conn: sqlite3.Connection) -> None:
    for statement in statements(_SESSIONS):
        conn.execute(statement)


def scan_queue(conn: sqlite3.Connection) -> None:
    # A sensor is queued from the batch that gave it readings until the scan that looks at
    # them (hub.storage.reports); an upgraded database starts with every sensor queued
    # (one full round, as the first round after a start always was).
    conn.execute("CREATE TABLE scan_queue (sensor_id bigint PRIMARY KEY)")
    conn.execute("INSERT INTO scan_queue (sensor_id) SELECT id FROM sensors")


# Step 11: failed console sign-ins per key (hub.storage.access) and sessions by token (for
# the per-token cap). IF NOT EXISTS: development databases ran this step as number 10.
_SIGN_IN = (
    """CREATE TABLE IF NOT EXISTS console_sign_in_attempts (
    key           TEXT PRIMARY KEY,
    attempts      INTEGER NOT NULL,
    window_start  REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS console_sign_in_attempts_window "
    "ON console_sign_in_attempts (window_start)",
    "CREATE INDEX IF NOT EXISTS console_sessions_token "
    "ON console_sessions (token_hash, created_at)",
)


def sign_in(conn: sqlite3.Connection) -> None:
    for statement in _SIGN_IN:
        conn.execute(statement)

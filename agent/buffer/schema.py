"""The buffer file's tables, created or brought up to date at every open.

Every step is idempotent (``IF NOT EXISTS`` or a check first), so opening a file written by
any earlier version, or a file a salvage is filling (recovery.py), is the same code.

Tables and what they promise:

* ``readings`` - the outbox. ``seq INTEGER PRIMARY KEY AUTOINCREMENT``: SQLite keeps the
  highest seq ever used in ``sqlite_sequence``, so a seq is never handed out twice, even
  after every row was synced and deleted. The hub deduplicates on (gateway_id, seq).
* ``backlog_count`` - the number of rows in ``readings``, kept by triggers in the same
  transaction as every insert and delete, so a start never counts a 10M-row table.
* ``dead_letters`` - messages and readings that can never be stored (newest kept).
* ``state`` - small key/value facts: counters, last sync, mqtt flags, the hub's rules.
* ``alerts`` - the alert outbox (agent/buffer/alerts.py).
* ``mqtt_committed`` - the redelivery table (agent/buffer/redelivery.py).
"""

from __future__ import annotations

import sqlite3

import sqlite_utils

from agent.buffer.db import transaction


def create(db: sqlite3.Connection) -> None:
    tables = sqlite_utils.Database(db)
    if "readings" not in tables.table_names():
        db.execute(
            "CREATE TABLE IF NOT EXISTS readings ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " key TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL, unit TEXT,"
            " received_at REAL NOT NULL)"
        )
    tables.table("dead_letters").create(
        {"id": int, "topic": str, "payload": bytes, "reason": str, "received_at": float},
        pk="id",
        not_null={"topic", "payload", "reason", "received_at"},
        if_not_exists=True,
    )
    tables.table("state").create({"k": str, "v": str}, pk="k", if_not_exists=True)
    if "backlog_count" not in tables.table_names():
        # ~0.5 us per row. A buffer from before this table is counted once, here.
        with transaction(db):
            db.execute("CREATE TABLE backlog_count (n INTEGER NOT NULL)")
            db.execute("INSERT INTO backlog_count SELECT count(*) FROM readings")
            db.execute(
                "CREATE TRIGGER readings_counted_in AFTER INSERT ON readings"
                " BEGIN UPDATE backlog_count SET n = n + 1; END"
            )
            db.execute(
                "CREATE TRIGGER readings_counted_out AFTER DELETE ON readings"
                " BEGIN UPDATE backlog_count SET n = n - 1; END"
            )
    # An alert is sent when it opens and again when it changes or closes (the hub upserts on
    # (gateway_id, id)): a row is unsynced while version > synced_version, and deleted once
    # it is closed and synced. AUTOINCREMENT: an id is never reused, even after its row is gone.
    db.execute(
        "CREATE TABLE IF NOT EXISTS alerts ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " key TEXT NOT NULL, rule TEXT NOT NULL, breach_type TEXT NOT NULL,"
        " severity TEXT NOT NULL, threshold_value REAL NOT NULL, value REAL NOT NULL,"
        " opened_at REAL NOT NULL, closed_at REAL, reading_seq INTEGER,"
        " version INTEGER NOT NULL DEFAULT 1, synced_version INTEGER NOT NULL DEFAULT 0)"
    )
    # rule_id: a rule alert's hub rule (the one deciding it now); buffers from before it have
    # none, and the hub infers the rule for those.
    if "rule_id" not in {str(r[1]) for r in db.execute("PRAGMA table_info(alerts)")}:
        db.execute("ALTER TABLE alerts ADD COLUMN rule_id INTEGER")
    # At most one open alert per sensor and rule; also the lookup for updates and closes.
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(key, rule) WHERE closed_at IS NULL"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS alerts_unsynced ON alerts(id) WHERE version > synced_version"
    )
    # The last MQTT messages committed, by packet id.
    db.execute(
        "CREATE TABLE IF NOT EXISTS mqtt_committed ("
        " mid INTEGER PRIMARY KEY, digest BLOB NOT NULL, n INTEGER NOT NULL)"
    )

"""Makes the databases of tests/hub/test_migrations.py with the hub as released at 5e526c9.

Run from a checkout of that commit (``git worktree add /tmp/fe-old 5e526c9``) with this
repository's venv::

    PYTHONPATH=/tmp/fe-old .venv/bin/python tests/hub/data/make_released_databases.py

It writes ``hub_5e526c9.db`` (SQLite) and ``hub_5e526c9_pg.sql`` (a plain pg_dump) here.
Every value but the creation times is fixed, so the test can name what it reads back.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

from hub.auth import hash_token
from hub.storage import GatewayReport, Storage, open_storage
from hub.storage.alerts import Actor, AlertFilter
from hub.storage.audit import AuditEntry
from hub.storage.model import FoundAnomaly, Thresholds
from hub.storage.rules import RuleSpec
from shared.wire import WireAlert, WireReading
from tests.pg import PgServer

HERE = Path(__file__).parent
DAY0 = 1_699_920_000.0  # midnight UTC: the readings cover two whole days
STEP_S = 600.0
COUNT = 288


def value(i: int) -> float:
    return 20.0 + (i % 12) * 0.5


def fill(storage: Storage) -> None:
    storage.migrate()
    gid = storage.add_gateway("gw-01", "acme", hash_token("gw-secret"))
    admin = storage.add_token("admin", hash_token("admin-secret"))
    storage.add_token("read", hash_token("read-secret"))
    who = Actor(admin, "admin")
    record = storage.token_by_hash(hash_token("gw-secret"))
    assert record is not None and record.factory_id is not None
    fid = record.factory_id
    machine = storage.create_machine(
        {"factory_id": fid, "line": "l1", "name": "m1", "type": "press", "status": "OPERATIONAL"},
        who,
    )
    sensor = storage.create_sensor({"machine_id": machine["id"], "name": "temp", "unit": "C"}, who)
    assert sensor["key"] == "l1/m1/temp"
    storage.set_thresholds(sensor["id"], Thresholds(None, 25.0, 0.5))
    alert = WireAlert(
        id=1,
        key="l1/m1/temp",
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=25.0,
        value=25.5,
        opened_at=DAY0 + 11 * STEP_S,
        closed_at=DAY0 + 12 * STEP_S,
        reading_seq=12,
    )
    report = GatewayReport(backlog=3, dropped=1, dead_letters=0, agent_version="0.9.0")
    for start in range(0, COUNT, 48):
        batch = [
            WireReading(i + 1, "l1/m1/temp", DAY0 + i * STEP_S, value(i), "C")
            for i in range(start, start + 48)
        ]
        storage.store_batch(gid, fid, batch, report, [alert] if start == 0 else [])
    storage.add_rule(
        sensor["id"], RuleSpec("GREATER_THAN", 24.0, None, "WARNING", True, 0.5, 30.0), actor=who
    )
    (fleet,) = storage.list_alerts(AlertFilter(), 0, 10)[0]
    storage.acknowledge_alert(fleet["id"], who, "seen it")
    storage.record_audit(AuditEntry(who, "reading.bulk", "reading", None, {"rows": 0}))
    storage.store_anomaly_scan(
        sensor["id"],
        "zscore",
        3.0,
        COUNT,
        {"mean": 22.75},
        [FoundAnomaly((gid << 40) + 12, DAY0 + 11 * STEP_S, value(11), 3.5, 11)],
    )
    # The released signature: this runs against 5e526c9, not against the code beside it.
    storage.create_session(  # type: ignore[call-arg]
        "cookie-hash", hash_token("admin-secret"), "csrf-1", 4_102_444_800.0
    )
    storage.checkpoint()
    storage.close()


def main() -> None:
    db = HERE / "hub_5e526c9.db"
    db.unlink(missing_ok=True)
    fill(open_storage(f"sqlite:///{db}"))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("VACUUM")
    server = PgServer().start()
    try:
        url = server.create_database()
        fill(open_storage(url))
        dump = subprocess.run(
            [str(server.bin / "pg_dump"), "--no-owner", "--no-privileges", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (HERE / "hub_5e526c9_pg.sql").write_text(dump)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""One schema history for both engines, and databases of the last release carried forward.

The databases under data/ were made by the hub as released at 5e526c9
(data/make_released_databases.py): an SQLite file at user_version 9 and a pg_dump whose
schema_migrations rows still carry PostgreSQL's old numbering (no step 2, every later step
one lower)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub.alert_view import alert_view, journal_view
from hub.api.audit import entry_view
from hub.auth import hash_token
from hub.storage import Storage, open_storage
from hub.storage.audit import Actor, AuditEntry
from hub.storage.migrations import STEPS, not_needed
from hub.storage.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from hub.storage.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.hub.conftest import query
from tests.pg import PgServer

DATA = Path(__file__).parent / "data"
RELEASED_SQLITE = DATA / "hub_5e526c9.db"
RELEASED_PG = DATA / "hub_5e526c9_pg.sql"
DAY0 = 1_699_920_000.0
STEP_S = 600.0
VALUES = [20.0 + (i % 12) * 0.5 for i in range(288)]
NUMBERED = list(enumerate(STEPS, start=1))


def test_both_engines_have_every_step_under_one_number() -> None:
    assert [(m.version, m.name) for m in SQLITE_MIGRATIONS] == NUMBERED
    assert [(m.version, m.name) for m in PG_MIGRATIONS] == NUMBERED
    skipped_sqlite = [m.version for m in SQLITE_MIGRATIONS if m.apply is not_needed]
    skipped_pg = [m.version for m in PG_MIGRATIONS if m.apply is not_needed]
    # PostgreSQL's first release had step 2's columns; fillfactor and Grafana's views are
    # PostgreSQL's alone.
    grafana = STEPS.index("read-only views for Grafana, indexed by time") + 1
    assert (skipped_pg, skipped_sqlite) == ([2], [10, grafana])


@pytest.fixture(params=["sqlite", "postgresql"])
def released(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Storage, str | None]]:
    """A Storage on a copy of the released database; and the PostgreSQL URL (None on SQLite)."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copyfile(RELEASED_SQLITE, path)
        storage, url = open_storage(f"sqlite:///{path}"), None
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.create_database()
        subprocess.run(
            [str(server.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
            input=RELEASED_PG.read_text(),
            text=True,
            capture_output=True,
            check=True,
            timeout=120,
        )
        storage = open_storage(url)
    try:
        yield storage, url
    finally:
        storage.close()


def _pg_rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(int(v), str(n)) for v, n in rows.fetchall()]


def test_a_released_database_migrates_to_the_shared_numbering(
    released: tuple[Storage, str | None],
) -> None:
    storage, url = released
    if url is None:
        assert storage.schema_version() == 9  # SQLite's numbers did not move
        # 10 (nothing to do on SQLite), 11 and every step after
        assert storage.migrate() == len(STEPS) - 9
    else:
        assert [n for _, n in _pg_rows(url)][:2] == [
            "tables of the first PostgreSQL release",
            "alert rules, alerts, journal, webhooks, operator role",
        ]
        # its 9 rows are now steps 1 to 10; 11 and every step after ran
        assert storage.migrate() == len(STEPS) - 10
        assert _pg_rows(url) == NUMBERED
    assert storage.schema_version() == len(STEPS)
    assert storage.migrate() == 0
    if url is not None:
        assert _pg_rows(url) == NUMBERED  # renumbered once


def test_a_released_database_reads_back_the_same(
    released: tuple[Storage, str | None],
) -> None:
    storage, _ = released
    storage.migrate()
    gateway = storage.token_by_hash(hash_token("gw-secret"))
    assert gateway is not None and gateway.gateway_name == "gw-01" and not gateway.revoked
    for secret, role in (("admin-secret", "admin"), ("read-secret", "read")):
        token = storage.token_by_hash(hash_token(secret))
        assert token is not None and token.role == role
    (sensor,) = storage.list_sensors(key="l1/m1/temp")
    sid = int(sensor["id"])
    assert (sensor["max_threshold"], sensor["unit"]) == (25.0, "C")
    rows = storage.readings(sid, None, None, 1000)
    assert [(ts, v) for _, ts, v in rows] == [
        (DAY0 + i * STEP_S, VALUES[i]) for i in range(len(VALUES))
    ]
    stats = storage.stats(sid, None, None)
    assert stats[:4] == (20.0, 25.5, sum(VALUES) / len(VALUES), 288)
    days = storage.series(sid, DAY0, DAY0 + 2 * 86_400, 86_400, 10)
    assert [(b, n) for b, _, _, _, n in days] == [(DAY0, 144), (DAY0 + 86_400, 144)]
    assert storage.history_span(sid) == (DAY0, DAY0 + 287 * STEP_S)
    gw = storage.get_gateway("gw-01")
    assert gw is not None and (gw["backlog"], gw["dropped"], gw["agent_version"]) == (
        3,
        1,
        "0.9.0",
    )
    (rule,) = storage.list_rules(sid)
    assert (rule["condition"], rule["threshold"], rule["severity"], rule["delay_s"]) == (
        "GREATER_THAN",
        24.0,
        "WARNING",
        30.0,
    )
    (edge,) = storage.edge_alerts(sid, 10)
    assert (edge["opened_at"], edge["closed_at"], edge["reading_seq"]) == (
        DAY0 + 11 * STEP_S,
        DAY0 + 12 * STEP_S,
        12,
    )
    fleet = storage.get_alert(1)
    assert fleet is not None and (fleet["state"], fleet["acknowledged"]) == ("cleared", True)
    journal = storage.alert_journal(1)
    assert [(j["action"], j["comment"]) for j in journal] == [
        ("opened", None),
        ("cleared", None),
        ("acknowledged", "seen it"),
    ]
    # The edge's grade ("high") stays in its own record; the alert and its journal are on
    # the one scale, and the edge alert is the source of the alert it opened.
    assert edge["severity"] == "high" and fleet["severity"] == "warning"
    assert [j["severity"] for j in journal] == ["warning", "warning", None]
    assert query(storage, "SELECT alert_id, alarm_id FROM edge_alerts") == [(1, 1)]
    audit, total = storage.audit_page(0, 50)
    assert total == 5
    assert sorted(e["action"] for e in audit) == [
        "alert.ack",
        "machine.create",
        "reading.bulk",
        "rule.create",
        "sensor.create",
    ]
    (anomaly,) = storage.stored_anomalies(sid, 10)
    assert (anomaly["ts"], anomaly["value"], anomaly["z_score"]) == (
        DAY0 + 11 * STEP_S,
        VALUES[11],
        3.5,
    )
    session = storage.session_by_hash("cookie-hash")
    assert session is not None and (session.token_hash, session.csrf) == (
        hash_token("admin-secret"),
        "csrf-1",
    )


def test_acts_recorded_before_names_were_kept_still_read(
    released: tuple[Storage, str | None],
) -> None:
    """The released hub kept who acted as a token id and a role only: after the migration
    its journal, audit log and acknowledgements read as a token (or the gateway) with no
    name, and new acts carry their names beside them."""
    storage, _ = released
    storage.migrate()
    journal = [journal_view(e) for e in storage.alert_journal(1)]
    gateway = {"kind": "gateway", "name": None, "display": None, "role": "gateway"}
    assert [e["by"] for e in journal[:2]] == [{**gateway, "token_id": None}] * 2
    acked = journal[2]["by"]
    assert (acked["kind"], acked["name"], acked["display"]) == ("token", None, None)
    assert isinstance(acked["token_id"], int) and acked["role"] in ("operator", "admin")
    alert = alert_view(storage.get_alert(1))  # type: ignore[arg-type]
    assert alert["acknowledged_by"] == acked
    audit, _ = storage.audit_page(0, 50)
    assert {entry_view(e)["by"]["kind"] for e in audit} == {"token"}
    assert all(entry_view(e)["by"]["name"] is None for e in audit)
    # old tokens have no name and still authenticate; a new one may have one
    token = storage.token_by_hash(hash_token("admin-secret"))
    assert token is not None and token.name is None
    new_id = storage.add_token("read", hash_token("new-secret"), name="wallboard")
    assert [t["name"] for t in storage.list_tokens() if t["id"] == new_id] == ["wallboard"]
    storage.record_audit(AuditEntry(Actor(new_id, "read", "token", "wallboard"), "x.y", "z", None))
    newest = entry_view(storage.audit_page(0, 1)[0][0])["by"]
    assert (newest["kind"], newest["name"], newest["token_id"]) == ("token", "wallboard", new_id)

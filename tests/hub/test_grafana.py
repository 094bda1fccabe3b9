"""Grafana's read-only way in (docs/grafana.md): the grafana_* views on PostgreSQL and
``edge-hub grafana-role``, against a real server where roles log in with their passwords.

The views exist on PostgreSQL only (Grafana's bundled data sources do not read SQLite); on
SQLite the command refuses, which the last test checks.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from hub.storage import GatewayReport, Storage, open_storage
from hub.storage.alert_rows import Actor, AlertFilter
from hub.storage.migrations import STEPS
from shared.wire import WireAlert, WireReading
from tests.hub.conftest import clean_env, free_port, hub_command, sqlite_url, write_config
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]
REPORT = GatewayReport(0, 0, 0, "test")
T0 = 1_700_006_400.0  # a whole number of 12-hour buckets: every tier's bucket starts here
VIEWS = ("grafana_readings", "grafana_rollups", "grafana_alerts")
ROLE = "edge_grafana"
KEY = "plant-1/l1/m1/temp"
# (seconds after T0, value) of KEY's readings; plant-2 has a sensor with the same hub key.
READINGS = [(0.0, 1.0), (30.0, 3.0), (90.0, 5.0), (3600.0, 7.0)]


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = PgServer(passwords=True).start()
    yield server
    server.stop()


@dataclass
class Hub:
    """A hub's PostgreSQL database with known data stored through the storage API, and the
    hub.toml that names it."""

    server: PgServer
    url: str
    config: Path
    alert_id: int

    @property
    def dbname(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def connect(self, user: str, password: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.server.port,
            dbname=self.dbname,
            user=user,
            password=password,
            autocommit=True,
        )

    def owner(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)


def grafana_role(config: Path, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hub_command(), "grafana-role", *args, "--config", str(config)],
        input=password,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def fill(storage: Storage) -> int:
    """KEY's readings in plant-1, the same hub key in plant-2, and one of KEY's alerts opened,
    cleared at the edge and acknowledged by an operator; returns the alert's id."""
    gw1 = storage.add_gateway("gw-1", "plant-1", "hash-1")
    gw2 = storage.add_gateway("gw-2", "plant-2", "hash-2")
    factories = {g: storage.get_gateway(g)["factory_id"] for g in ("gw-1", "gw-2")}  # type: ignore[index]
    readings = [WireReading(i, "l1/m1/temp", T0 + s, v, None) for i, (s, v) in enumerate(READINGS)]
    storage.store_batch(gw1, factories["gw-1"], readings, REPORT)
    storage.store_batch(
        gw2, factories["gw-2"], [WireReading(0, "l1/m1/temp", T0, 100.0, None)], REPORT
    )
    alert = WireAlert(
        id=1,
        key="l1/m1/temp",
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=4.0,
        value=5.0,
        opened_at=T0 + 90,
        closed_at=T0 + 150,
    )
    storage.store_batch(
        gw1,
        factories["gw-1"],
        [WireReading(10, "l1/m1/temp", T0 + 150, 2.0, None)],
        REPORT,
        [alert],
    )
    (row,), _ = storage.list_alerts(AlertFilter(), 0, 10)
    alert_id = int(row["id"])
    assert storage.acknowledge_alert(alert_id, Actor(7, "operator"), "seen it") is not None
    return alert_id


@pytest.fixture
def hub(pg: PgServer, tmp_path: Path) -> Iterator[Hub]:
    url = pg.create_database()
    storage = open_storage(url)
    try:
        storage.migrate()
        alert_id = fill(storage)
    finally:
        storage.close()
    yield Hub(pg, url, write_config(tmp_path, free_port(), database=url), alert_id)
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        # Roles belong to the server, not to the test's database.
        conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def public_tables(hub: Hub) -> dict[str, str]:
    """Every table of the hub's schema, readings' day partitions included, with a column."""
    with hub.owner() as conn:
        rows = conn.execute(
            "SELECT t.tablename, min(c.column_name) FROM pg_tables t "
            "JOIN information_schema.columns c ON c.table_schema = t.schemaname "
            "AND c.table_name = t.tablename WHERE t.schemaname = 'public' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def test_the_role_reads_the_views(hub: Hub) -> None:
    made = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="s3cret\n")
    assert made.returncode == 0, made.stderr
    assert "created" in made.stderr
    with hub.connect(ROLE, "s3cret") as conn:
        rows = conn.execute(
            "SELECT time, sensor_key, value FROM grafana_readings ORDER BY sensor_key, time"
        ).fetchall()
        assert rows == sorted(
            [
                *[(at(T0 + s), KEY, v) for s, v in READINGS],
                (at(T0 + 150), KEY, 2.0),
                (at(T0), "plant-2/l1/m1/temp", 100.0),
            ],
            key=lambda r: (r[1], r[0]),
        )
        rollups = conn.execute(
            "SELECT tier, time, min, max, avg, count FROM grafana_rollups WHERE sensor_key = %s",
            (KEY,),
        ).fetchall()
        assert sorted(rollups) == sorted(
            [
                ("1m", at(T0), 1.0, 3.0, 2.0, 2),
                ("1m", at(T0 + 60), 5.0, 5.0, 5.0, 1),
                ("1m", at(T0 + 120), 2.0, 2.0, 2.0, 1),
                ("1m", at(T0 + 3600), 7.0, 7.0, 7.0, 1),
                ("1h", at(T0), 1.0, 5.0, 11.0 / 4, 4),
                ("1h", at(T0 + 3600), 7.0, 7.0, 7.0, 1),
                ("12h", at(T0), 1.0, 7.0, 18.0 / 5, 5),
            ]
        )
        cur = conn.execute("SELECT * FROM grafana_alerts")
        names = [c.name for c in cur.description or []]
        (alert,) = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert {k: alert[k] for k in ("time", "alert_id", "factory", "sensor_key", "gateway")} == {
        "time": at(T0 + 90),
        "alert_id": hub.alert_id,
        "factory": "plant-1",
        "sensor_key": KEY,
        "gateway": "gw-1",
    }
    assert (alert["severity"], alert["state"], alert["acknowledged"]) == (
        "warning",
        "cleared",
        True,
    )
    assert (alert["opened_at"], alert["cleared_at"], alert["duration_s"]) == (
        at(T0 + 90),
        at(T0 + 150),
        60.0,
    )
    assert (alert["value"], alert["threshold"], alert["acknowledged_by"]) == (5.0, 4.0, "operator")
    assert alert["acknowledged_at"] > alert["cleared_at"]
    assert not alert["shelved"] and not alert["chattering"] and not alert["stale"]
    journal = alert["journal"].splitlines()
    assert [line.split(" ", 1)[1] for line in journal] == [
        "opened (gateway) warning",
        "cleared (gateway) warning",
        "acknowledged (operator): seen it",
    ]


def _refused(conn: psycopg.Connection[Any], statement: sql.Composable) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_role_may_do_nothing_else(hub: Hub) -> None:
    made = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="s3cret")
    assert made.returncode == 0, made.stderr
    tables = public_tables(hub)
    assert "readings" in tables and any(t.startswith("readings_2023") for t in tables)
    with hub.connect(ROLE, "s3cret") as conn:
        for table, column in tables.items():
            name, col = sql.Identifier(table), sql.Identifier(column)
            _refused(conn, sql.SQL("SELECT * FROM {} LIMIT 1").format(name))
            _refused(conn, sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name))
            _refused(conn, sql.SQL("UPDATE {} SET {} = {} WHERE false").format(name, col, col))
            _refused(conn, sql.SQL("DELETE FROM {}").format(name))
            _refused(conn, sql.SQL("TRUNCATE {}").format(name))
        for view in VIEWS:
            # A view of joins takes no writes at all; the role has no right to either.
            with pytest.raises(psycopg.Error):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(view)))
            granted = conn.execute(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = %s AND table_name = %s",
                (ROLE, view),
            ).fetchall()
            assert granted == [("SELECT",)]
        _refused(conn, sql.SQL("CREATE TABLE public.mine (x int)"))
        _refused(conn, sql.SQL("CREATE VIEW public.mine AS SELECT 1 AS x"))
        _refused(conn, sql.SQL("CREATE SCHEMA mine"))
    with hub.owner() as owner:
        grants = owner.execute(
            "SELECT table_name FROM information_schema.role_table_grants WHERE grantee = %s "
            "ORDER BY 1",
            (ROLE,),
        ).fetchall()
    assert [g[0] for g in grants] == sorted(VIEWS)


def test_running_it_again_changes_the_password_and_nothing_else(hub: Hub) -> None:
    first = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="old-one\n")
    assert first.returncode == 0, first.stderr
    # Someone gave the role a table meanwhile: running the command again takes it back.
    with hub.owner() as owner:
        owner.execute(f"GRANT SELECT, INSERT ON alerts TO {ROLE}")
    again = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="new-one\n")
    assert again.returncode == 0, again.stderr
    assert "password changed" in again.stderr
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        hub.connect(ROLE, "old-one")
    with hub.connect(ROLE, "new-one") as conn:
        assert conn.execute("SELECT count(*) FROM grafana_alerts").fetchone() == (1,)
        _refused(conn, sql.SQL("SELECT * FROM alerts"))
    with hub.owner() as owner:
        assert owner.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (ROLE,)
        ).fetchone() == (1,)
        # What the server keeps is a SCRAM verifier, never the password.
        (secret,) = owner.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,)
        ).fetchone()  # type: ignore[misc]
    assert str(secret).startswith("SCRAM-SHA-256$") and "new-one" not in str(secret)


# Each refused before the database is touched; the cases cover PostgreSQL's rule for a name
# without quotes (lower case kept), its length limit and the names it keeps for itself.
BAD_NAMES = [
    ("Edge_Grafana", "lower-case"),
    ("1grafana", "lower-case"),
    ("edge-grafana", "lower-case"),
    ('x"; DROP TABLE readings; --', "lower-case"),
    ("", "lower-case"),
    ("g" * 64, "longer than 63"),
    ("pg_grafana", "reserved"),
    ("public", "reserved"),
]


def test_bad_names_are_refused(hub: Hub) -> None:
    for name, why in BAD_NAMES:
        done = grafana_role(hub.config, "--name", name, "--password-stdin", password="pw\n")
        assert done.returncode == 2, name
        assert why in done.stderr, (name, done.stderr)
    with hub.owner() as owner:
        # Only the superuser can log in: no role was made.
        assert owner.execute("SELECT count(*) FROM pg_roles WHERE rolcanlogin").fetchone() == (1,)
    assert "readings" in public_tables(hub)


def test_the_hubs_own_role_and_an_empty_password_are_refused(hub: Hub) -> None:
    own = grafana_role(hub.config, "--name", hub.server.user, "--password-stdin", password="x\n")
    assert own.returncode == 2 and "the hub itself connects as" in own.stderr
    empty = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="\n")
    assert empty.returncode == 2 and "no password" in empty.stderr
    with hub.owner() as owner:
        assert owner.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (ROLE,)
        ).fetchone() == (0,)


def _plan(hub: Hub, query: str) -> str:
    with hub.owner() as conn:
        # Seq scans off: the plan shows what the indexes can do, whatever the few test rows
        # would make cheapest.
        conn.execute("SET enable_seqscan = off")
        return "\n".join(str(r[0]) for r in conn.execute("EXPLAIN " + query).fetchall())


def test_a_chart_of_one_sensor_reads_its_range_from_the_indexes(hub: Hub) -> None:
    """The queries a panel sends: raw readings by $__unixEpochFilter(ts) are a range of the
    readings' (sensor_id, ts) index in the range's day partition alone; a tier by
    $__timeFilter(time) a range of its index on to_timestamp(bucket), the other tiers unread."""
    # Enough sensors and readings, with statistics, for the plan a real hub gets: one
    # sensor's range in the index, not every sensor's range of the day.
    storage = open_storage(hub.url)
    try:
        gateway = storage.add_gateway("gw-busy", "plant-1", "hash-busy")
        factory = storage.get_gateway("gw-busy")["factory_id"]  # type: ignore[index]
        busy = [WireReading(i, f"l2/m{i % 50}/s", T0 + i // 50, 1.0, None) for i in range(50 * 400)]
        storage.store_batch(gateway, factory, busy, REPORT)
    finally:
        storage.close()
    with hub.owner() as conn:
        conn.execute("ANALYZE")
    raw = _plan(
        hub,
        f"SELECT time, value FROM grafana_readings WHERE sensor_key = '{KEY}' "
        f"AND ts >= {T0} AND ts <= {T0 + 3600}",
    )
    scans = [line for line in raw.splitlines() if " on readings_" in line]
    assert len(scans) == 1 and "Index" in scans[0] and "readings_20231115" in scans[0], raw
    assert "Index Cond: ((sensor_id = s.id) AND (ts >= " in raw, raw
    tier = _plan(
        hub,
        f"SELECT time, avg FROM grafana_rollups WHERE sensor_key = '{KEY}' AND tier = '1h' "
        "AND time BETWEEN '2023-11-15T00:00:00Z' AND '2023-11-15T06:00:00Z'",
    )
    assert "rollup_1m" not in tier and "rollup_12h" not in tier, tier
    assert "rollup_1h_sensor_time" in tier, tier
    assert "(sensor_id = s.id) AND (to_timestamp(bucket) >= " in tier, tier


def _as_grafana_sends_it(query: str, interval_ms: int) -> str:
    """A panel query of the docs with Grafana's macros and variable replaced as Grafana
    replaces them for a PostgreSQL data source."""
    return (
        query.replace(
            "$__timeFilter(time)",
            "time BETWEEN '2023-11-14T12:00:00Z' AND '2023-11-16T00:00:00Z'",
        )
        .replace("$__unixEpochFilter(ts)", f"ts >= {T0 - 43200:.0f} AND ts <= {T0 + 86400:.0f}")
        .replace("$__interval_ms", str(interval_ms))
        .replace("${sensor:sqlstring}", f"'{KEY}'")
    )


def test_the_queries_in_the_docs_run_as_the_role(hub: Hub) -> None:
    queries = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "grafana.md").read_text(), re.S)
    assert len(queries) == 4
    made = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="s3cret")
    assert made.returncode == 0, made.stderr
    variable, chart, table, annotations = queries
    with hub.connect(ROLE, "s3cret") as conn:
        keys = conn.execute(_as_grafana_sends_it(variable, 1000)).fetchall()
        assert keys == [(KEY,), ("plant-2/l1/m1/temp",)]
        # A point per second: raw readings; a minute, an hour, a day: the tiers.
        for interval_ms, points in ((1000, 5), (60_000, 4), (3_600_000, 2), (86_400_000, 1)):
            rows = conn.execute(_as_grafana_sends_it(chart, interval_ms)).fetchall()
            assert len(rows) == points, (interval_ms, rows)
            assert {r[1] for r in rows} == {KEY}
            assert (min(r[3] for r in rows), max(r[4] for r in rows)) == (1.0, 7.0)
        (alarm,) = conn.execute(_as_grafana_sends_it(table, 1000)).fetchall()
        assert alarm[1] == KEY and "seen it" in alarm[-1]
        (note,) = conn.execute(_as_grafana_sends_it(annotations, 1000)).fetchall()
        assert note[2] == f"{KEY}: warning above_maximum"


def test_the_step_runs_again_and_copy_data_ignores_the_views(hub: Hub) -> None:
    step = STEPS.index("read-only views for Grafana, indexed by time") + 1
    with hub.owner() as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version >= %s", (step,))
    storage = open_storage(hub.url)
    try:
        assert storage.migrate() == len(STEPS) - step + 1
        assert not set(VIEWS) & set(storage.dialect.table_columns())
    finally:
        storage.close()


def test_a_hub_role_that_is_no_superuser(pg: PgServer, tmp_path: Path) -> None:
    """As deployed: the hub's role owns the database and may create roles, nothing more. The
    views are its, so Grafana's role reads through them; without CREATEROLE the command
    fails saying what is missing. Here the hub's tables are in a schema named after its role
    (first on PostgreSQL's default search path), and Grafana's role finds the views bare."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE edge_hub LOGIN CREATEROLE PASSWORD 'hub-pw'")
        conn.execute("CREATE DATABASE g_owned OWNER edge_hub")
    url = f"postgresql://edge_hub:hub-pw@127.0.0.1:{pg.port}/g_owned"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA edge_hub")
    try:
        storage = open_storage(url)
        try:
            storage.migrate()
            alert_id = fill(storage)
        finally:
            storage.close()
        hub = Hub(pg, url, write_config(tmp_path, free_port(), database=url), alert_id)
        made = grafana_role(hub.config, "--name", ROLE, "--password-stdin", password="s3cret")
        assert made.returncode == 0, made.stderr
        with hub.connect(ROLE, "s3cret") as conn:
            for view, rows in (("grafana_readings", 6), ("grafana_rollups", 10)):
                count = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(view))
                )
                assert count.fetchone() == (rows,)
            (journal,) = conn.execute("SELECT journal FROM grafana_alerts").fetchone()  # type: ignore[misc]
            assert "acknowledged (operator): seen it" in journal
            _refused(conn, sql.SQL("SELECT * FROM readings"))
            _refused(conn, sql.SQL("SELECT * FROM edge_hub.readings"))
            _refused(conn, sql.SQL("CREATE TABLE public.mine (x int)"))
            _refused(conn, sql.SQL("CREATE TABLE edge_hub.mine (x int)"))
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("ALTER ROLE edge_hub NOCREATEROLE")
        refused = grafana_role(
            hub.config, "--name", "edge_grafana_2", "--password-stdin", password="s3cret"
        )
        assert refused.returncode == 1
        assert "needs CREATEROLE" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS g_owned WITH (FORCE)")
            for role in (ROLE, "edge_grafana_2", "edge_hub"):
                conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_on_sqlite_the_command_says_it_needs_postgresql(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), database=sqlite_url(tmp_path))
    done = grafana_role(config, "--name", ROLE, "--password-stdin", password="pw\n")
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr and "SQLite" in done.stderr
    assert not (tmp_path / "data" / "hub.db").exists()  # nothing made on the way

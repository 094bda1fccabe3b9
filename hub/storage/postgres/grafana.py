"""Grafana's way in (docs/grafana.md): three views over the hub's tables and a login role that
may read them and nothing else.

The views belong to the role that ran the migrations (the hub's), so they read the tables
with its rights and the Grafana role needs no grant on any table. ``time`` is a timestamptz
(what Grafana plots and its ``$__timeFilter`` compares with); the tables keep epoch seconds,
and PostgreSQL cannot turn a filter on ``to_timestamp(ts)`` into a range of ``ts``:

* the rollup tiers and the alerts have an index on ``to_timestamp`` of their time, so
  ``$__timeFilter(time)`` is an index range there. Those indexes cost next to nothing: a
  tier row is written once per sensor and bucket, then updated in place;
* raw readings have no such index: measured on 40,000-reading batches, one on
  ``(sensor_id, to_timestamp(ts))`` added 36% to the WAL and 54% to the index bytes of every
  reading stored. ``grafana_readings`` carries the epoch seconds as ``ts`` instead, and
  Grafana's ``$__unixEpochFilter(ts)`` filters them as literals: the readings' own
  ``(sensor_id, ts)`` index, and only the day partitions of the range are read.

A sensor's key here is its factory's name and its own key, ``factory/line/machine/sensor``:
one Grafana shows many plants, and the same key in two factories is two sensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql

from hub.storage.model import StorageError

VIEWS = ("grafana_readings", "grafana_rollups", "grafana_alerts")
TIERS = (("1m", "rollup_1m"), ("1h", "rollup_1h"), ("12h", "rollup_12h"))
# pg_advisory_xact_lock key for role changes ("edgegraf"): two runs at once do not race to
# create the same role.
ROLE_LOCK = 0x6564676567726166

_KEY = "f.name || '/' || s.key"
_SENSOR_JOIN = "JOIN sensors s ON s.id = {alias}.sensor_id JOIN factories f ON f.id = s.factory_id"

_READINGS = (
    "CREATE OR REPLACE VIEW grafana_readings AS "
    f"SELECT to_timestamp(r.ts) AS time, {_KEY} AS sensor_key, r.value, r.ts "
    f"FROM readings r {_SENSOR_JOIN.format(alias='r')}"
)

# One branch per tier: a filter on ``tier`` (a constant in each branch) leaves the other
# tiers unread.
_ROLLUPS = "CREATE OR REPLACE VIEW grafana_rollups AS " + " UNION ALL ".join(
    f"SELECT to_timestamp(t.bucket) AS time, {_KEY} AS sensor_key, text '{tier}' AS tier, "
    "t.min, t.max, t.sum / t.count AS avg, t.count "
    f"FROM {table} t {_SENSOR_JOIN.format(alias='t')}"
    for tier, table in TIERS
)

_NOW = "extract(epoch FROM now())::double precision"
# The journal as one text cell, a line per entry, oldest first: what an alarm table shows
# when a row is opened, read through alert_journal's (alert_id, id) index.
_JOURNAL = (
    "(SELECT string_agg(to_char(to_timestamp(j.at) AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' ' || j.action || ' (' || j.role || ')' "
    "|| coalesce(' ' || j.severity, '') || coalesce(': ' || j.comment, ''), "
    "E'\\n' ORDER BY j.id) FROM alert_journal j WHERE j.alert_id = a.id)"
)
_ALERTS = (
    "CREATE OR REPLACE VIEW grafana_alerts AS SELECT "
    "to_timestamp(a.opened_at) AS time, a.id AS alert_id, f.name AS factory, "
    f"CASE WHEN s.id IS NULL THEN NULL ELSE {_KEY} END AS sensor_key, g.name AS gateway, "
    "a.kind, a.severity, a.state, a.acknowledged, a.breach_type, a.value, "
    "a.threshold_value AS threshold, to_timestamp(a.opened_at) AS opened_at, "
    "to_timestamp(a.cleared_at) AS cleared_at, to_timestamp(a.acknowledged_at) AS "
    "acknowledged_at, a.acknowledged_role AS acknowledged_by, "
    f"coalesce(a.shelved_until > {_NOW}, false) AS shelved, a.chattering, a.stale, "
    f"coalesce(a.cleared_at, {_NOW}) - a.opened_at AS duration_s, {_JOURNAL} AS journal "
    "FROM alerts a JOIN gateways g ON g.id = a.gateway_id "
    "JOIN factories f ON f.id = a.factory_id LEFT JOIN sensors s ON s.id = a.sensor_id"
)

# Safe to run again, like every later step.
_INDEXES = (
    *(
        f"CREATE INDEX IF NOT EXISTS {table}_sensor_time ON {table} "
        "(sensor_id, to_timestamp(bucket))"
        for _, table in TIERS
    ),
    "CREATE INDEX IF NOT EXISTS alerts_time ON alerts (to_timestamp(opened_at))",
)


def grafana_views(conn: psycopg.Connection[Any]) -> None:
    """The step "read-only views for Grafana, indexed by time" (migrations.STEPS)."""
    for statement in (*_INDEXES, _READINGS, _ROLLUPS, _ALERTS):
        conn.execute(statement)


class RoleRefused(StorageError):
    """The name belongs to a role this command must not turn into Grafana's."""


def _refusal(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute(
        "SELECT r.rolname = current_user, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb "
        "OR r.rolreplication OR r.rolbypassrls, "
        "EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) "
        "FROM pg_roles r WHERE r.rolname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    own, powerful, member = row
    if own:
        return f"{name!r} is the role the hub itself connects as"
    if powerful:
        return f"role {name!r} exists and may do more than read (superuser, create...)"
    if member:
        return f"role {name!r} exists and is a member of other roles (it would inherit them)"
    return None


@dataclass(frozen=True, slots=True)
class GrafanaRole:
    created: bool  # False: it existed, its password was set
    # Whether it may still create tables in the hub's schema: PostgreSQL 14 and older let
    # every role (PUBLIC) create them in schema public, which only its owner can take back.
    may_create_tables: bool


def grant_reader(conn: psycopg.Connection[Any], name: str, password: str) -> GrafanaRole:
    """Make role ``name`` (or, when it exists, set its password) able to log in and read the
    views of :data:`VIEWS`, and nothing of the hub's tables. ``conn`` is the hub's own
    (autocommit) connection: the views are its. RoleRefused when ``name`` is a role that is
    not for this."""
    try:
        return _grant_reader(conn, name, password)
    except errors.InsufficientPrivilege as exc:
        raise StorageError(
            f"{exc.diag.message_primary or exc}: the hub's database role needs CREATEROLE "
            "to make Grafana's role (docs/grafana.md)"
        ) from exc


def _grant_reader(conn: psycopg.Connection[Any], name: str, password: str) -> GrafanaRole:
    role = sql.Identifier(name)
    # The server gets the SCRAM verifier, never the password: statement logs and
    # pg_stat_activity would show it otherwise.
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROLE_LOCK,))
        refusal = _refusal(conn, name)
        if refusal is not None:
            raise RoleRefused(refusal)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        change = sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOINHERIT PASSWORD {}"
            if exists
            else "CREATE ROLE {} WITH LOGIN NOINHERIT PASSWORD {}"
        )
        conn.execute(change.format(role, sql.Literal(verifier.decode())))
        database, schema = conn.execute("SELECT current_database(), current_schema()").fetchone()  # type: ignore[misc]
        where = sql.Identifier(schema)
        # Exactly the views: whatever this role was given on the schema's tables before goes.
        for kind in ("TABLES", "SEQUENCES"):
            conn.execute(
                sql.SQL("REVOKE ALL ON ALL " + kind + " IN SCHEMA {} FROM {}").format(where, role)
            )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role)
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, role))
        conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(schema, v) for v in VIEWS), role
            )
        )
        # Grafana's queries name the views bare: they resolve in the hub's schema, whatever
        # it is (public, unless the hub's role has a schema of its own name).
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                role, sql.Identifier(database), where
            )
        )
        row = conn.execute(
            "SELECT has_schema_privilege(%s, %s, 'CREATE')", (name, schema)
        ).fetchone()
    return GrafanaRole(created=not exists, may_create_tables=bool(row and row[0]))

"""Versioned schema migrations: one list of named steps for both engines, numbered from 1,
never edited once released. A database records the last step it ran and gets the rest, in
order, inside the engine's own lock, so several hub processes starting at once migrate it
exactly once.

Each engine's schema module maps every name of :data:`STEPS` to its own function; a step an
engine does not need is :func:`not_needed` there, so a number means the same schema change
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hub.storage.model import StorageError

C = TypeVar("C")

STEPS: tuple[str, ...] = (
    "tables of the first release",
    "factory config_version, sensor deadband",
    "alert rules, alerts, journal, webhooks, operator role",
    "rollup tiers 1m, 1h (filled from stored readings), retention status",
    "factory location, machine type/status, bulk keys, audit log",
    "sensor stale marks from Sparkplug B edge nodes",
    "console sessions",
    "anomaly scan queue",
    "rollup tier 12h (filled from the 1h tier)",
    "rollup tiers leave room on each page for HOT updates",
    "console sign-in attempts, sessions by token",
    "people: users and the factories they are limited to",
    "alert chattering and stale marks",
    "token scopes: the factories a token is limited to",
    "read-only views for Grafana, indexed by time",
    "alert peak value",
    "who acted: kind, name and display; token names",
    "people's console sessions: the user, idle timeout",
    "single sign-on: a person's OpenID subject, sign-ins under way",
    "alert journal by action and time",
    "out-of-service periods of sensors and machines",
    "edge alerts name the rule that fired",
    "one alarm per sensor: edge alerts as its sources, one severity scale",
    "rate limits and read budgets shared by every hub process",
)


@dataclass(frozen=True, slots=True)
class Migration(Generic[C]):
    version: int
    name: str
    apply: Callable[[C], None]


def not_needed(conn: Any) -> None:
    """A step of :data:`STEPS` that one engine's schema already has or does not use."""


def numbered(steps: Mapping[str, Callable[[C], None]]) -> list[Migration[C]]:
    """An engine's steps in the order and with the numbers of :data:`STEPS`; raises unless
    ``steps`` names each of them exactly once."""
    unknown = set(steps) - set(STEPS)
    missing = [name for name in STEPS if name not in steps]
    if unknown or missing:
        raise AssertionError(f"steps not in STEPS: {sorted(unknown)}; missing: {missing}")
    return [Migration(n, name, steps[name]) for n, name in enumerate(STEPS, start=1)]


def check_sequence(migrations: Sequence[Migration[C]]) -> int:
    """The latest version; raises if the steps are not numbered 1, 2, 3, ..."""
    for expected, m in enumerate(migrations, start=1):
        if m.version != expected:
            raise AssertionError(f"migration {m.name!r} is numbered {m.version}, not {expected}")
    return len(migrations)


def pending(migrations: Sequence[Migration[C]], current: int, where: str) -> list[Migration[C]]:
    """The steps after ``current``; StorageError when the database is newer than this code."""
    latest = check_sequence(migrations)
    if current > latest:
        raise StorageError(
            f"database {where} has schema version {current}; this edge-hub knows {latest}. "
            "Upgrade edge-hub."
        )
    return list(migrations[current:])


def statements(script: str) -> list[str]:
    """A script of ';'-separated statements (no ';' inside them) as a list."""
    return [s.strip() for s in script.split(";") if s.strip()]


def fill_coarser(table: str, finer: str, bucket_expr: str) -> str:
    """INSERT ... SELECT of rollup tier ``table``'s buckets from the tier ``finer``
    (``bucket_expr``: the engine's coarser bucket of a finer row's ``bucket``). The first and
    last finer row of each bucket carry its first and last reading, as the tiers nest."""
    return (
        f"INSERT INTO {table} (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) "
        "SELECT g.sensor_id, g.h, g.mn, g.mx, g.sm, g.n, f.first_ts, f.first_id, f.first_value, "
        "l.last_ts, l.last_id, l.last_value FROM ("
        f"SELECT sensor_id, {bucket_expr} AS h, min(min) AS mn, max(max) AS mx, "
        "sum(sum) AS sm, CAST(sum(count) AS bigint) AS n, min(bucket) AS fb, "
        f"max(bucket) AS lb FROM {finer} GROUP BY sensor_id, h) g "
        f"JOIN {finer} f ON f.sensor_id = g.sensor_id AND f.bucket = g.fb "
        f"JOIN {finer} l ON l.sensor_id = g.sensor_id AND l.bucket = g.lb"
    )

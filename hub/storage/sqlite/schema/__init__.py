"""The SQLite schema: every step of hub.storage.migrations.STEPS, with the numbers it gives
them. The version lives in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

from hub.storage.migrations import Migration, not_needed, numbered
from hub.storage.sqlite.schema.actors import actors
from hub.storage.sqlite.schema.alarm_marks import (
    alarm_marks,
    alarm_sources,
    edge_rule_ids,
    journal_by_action,
    peak_value,
)
from hub.storage.sqlite.schema.first import LEGACY_VERSION, heal_legacy, v1, v2
from hub.storage.sqlite.schema.later import (
    alarms,
    crud,
    half_day_tier,
    rollups,
    scan_queue,
    sessions,
    sign_in,
    stale_marks,
)
from hub.storage.sqlite.schema.people import (
    single_sign_on,
    token_scopes,
    user_sessions,
    users,
)
from hub.storage.sqlite.schema.quotas import shared_quotas
from hub.storage.sqlite.schema.service import service_periods

__all__ = ["LEGACY_VERSION", "MIGRATIONS", "heal_legacy"]


MIGRATIONS: list[Migration[sqlite3.Connection]] = numbered(
    {
        "tables of the first release": v1,
        "factory config_version, sensor deadband": v2,
        "alert rules, alerts, journal, webhooks, operator role": alarms,
        "rollup tiers 1m, 1h (filled from stored readings), retention status": rollups,
        "factory location, machine type/status, bulk keys, audit log": crud,
        "sensor stale marks from Sparkplug B edge nodes": stale_marks,
        "console sessions": sessions,
        "anomaly scan queue": scan_queue,
        "rollup tier 12h (filled from the 1h tier)": half_day_tier,
        # Fillfactor is a PostgreSQL page setting; SQLite has no equivalent to set.
        "rollup tiers leave room on each page for HOT updates": not_needed,
        "console sign-in attempts, sessions by token": sign_in,
        "people: users and the factories they are limited to": users,
        "alert chattering and stale marks": alarm_marks,
        "token scopes: the factories a token is limited to": token_scopes,
        # Grafana reads PostgreSQL with its bundled data source; reading SQLite takes a
        # plugin, and the hub's file is not shared with another host anyway.
        "read-only views for Grafana, indexed by time": not_needed,
        "alert peak value": peak_value,
        "who acted: kind, name and display; token names": actors,
        "people's console sessions: the user, idle timeout": user_sessions,
        "single sign-on: a person's OpenID subject, sign-ins under way": single_sign_on,
        "alert journal by action and time": journal_by_action,
        "out-of-service periods of sensors and machines": service_periods,
        "edge alerts name the rule that fired": edge_rule_ids,
        "one alarm per sensor: edge alerts as its sources, one severity scale": alarm_sources,
        "rate limits and read budgets shared by every hub process": shared_quotas,
    }
)

"""Checks of a decoded sync batch that only the hub can or must make, before anything is stored.

shared.wire checks the shape and each reading (seq, key, ts, value). This adds what the
database and the read side need: integers that fit a signed 64-bit column, alert times a
calendar can show and that lie within the hub's time window, and bounds on how many new
sensors a batch may create. Each problem names its field (and the alert or reading it is
about), so a 422 tells the agent exactly what to set aside.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from shared.payload import TsWindow
from shared.text import hidden_char
from shared.wire import MAX_SEQ, Batch

# The largest value a signed 64-bit INTEGER column (SQLite, PostgreSQL BIGINT) holds.
MAX_INT64 = 2**63 - 1
# 9999-12-31T23:59:59.999Z: the last instant RFC 3339 (and Python's datetime) can write.
# Anything later cannot be shown by any endpoint that renders times.
MAX_TS = 253402300799.999


def time_problem(ts: float) -> str | None:
    """Why ``ts`` (epoch seconds) is not a time the hub can store and show, or None."""
    if not math.isfinite(ts):
        return "must be finite epoch seconds"
    if not 0 <= ts <= MAX_TS:
        return "must be between 1970-01-01 and 9999-12-31 (epoch seconds 0 to 253402300799)"
    return None


def _has_control(text: str) -> bool:
    # The text rule of every field the hub takes (shared.text): NUL cannot be stored in
    # PostgreSQL text at all; the other controls break log lines and CSV exports.
    return hidden_char(text) is not None


def report_problems(batch: Batch) -> list[dict[str, Any]]:
    """backlog, dropped, dead_letters: counts a 64-bit column can hold; agent_version: text."""
    problems = [
        {"field": name, "message": f"must be at most {MAX_INT64}"}
        for name in ("backlog", "dropped", "dead_letters")
        if getattr(batch, name) > MAX_INT64
    ]
    if _has_control(batch.agent_version):
        problems.append(
            {"field": "agent_version", "message": "must not contain control characters"}
        )
    return problems


def reading_problems(batch: Batch) -> list[dict[str, Any]]:
    """Readings whose ts no endpoint could write as a date (shared.wire bounds ts by the
    hub's window, but max_future_s = 0 turns that bound off), or whose unit holds control
    characters."""
    if not batch.readings:
        return []
    late = max(r.ts for r in batch.readings) > MAX_TS
    bad_units = {u for u in {r.unit for r in batch.readings} if u is not None and _has_control(u)}
    if not late and not bad_units:
        return []
    problems: list[dict[str, Any]] = []
    for i, r in enumerate(batch.readings):
        if r.ts > MAX_TS:
            problems.append(
                {"index": i, "seq": r.seq, "field": "ts", "message": time_problem(r.ts)}
            )
        if r.unit in bad_units:
            problems.append(
                {
                    "index": i,
                    "seq": r.seq,
                    "field": "unit",
                    "message": "must not contain control characters",
                }
            )
        if len(problems) >= 100:
            break
    return problems


def alert_problems(batch: Batch, window: TsWindow, now: float) -> list[dict[str, Any]]:
    """Each alert's id, reading_seq and times; named by ``alert_id`` (the agent gives up
    exactly those alerts and sends the rest again).

    A closed_at before opened_at is no problem: the reading that cleared the alert was
    stamped before the one that opened it (readings arrive out of order, a device replays
    its memory), and the hub records the clear at the opening time (hub.storage.alerts)."""
    problems: list[dict[str, Any]] = []
    for i, a in enumerate(batch.alerts):
        where = {"alert_index": i, "alert_id": a.id}
        if a.id > MAX_INT64:
            problems.append({**where, "field": "alerts.id", "message": f"must be <= {MAX_INT64}"})
        if a.rule_id is not None and not 0 < a.rule_id <= MAX_INT64:
            problems.append(
                {**where, "field": "alerts.rule_id", "message": f"must be in 1..{MAX_INT64}"}
            )
        if a.reading_seq is not None and not 0 < a.reading_seq < MAX_SEQ:
            problems.append(
                {**where, "field": "alerts.reading_seq", "message": f"must be in 1..{MAX_SEQ - 1}"}
            )
        for name, ts in (("opened_at", a.opened_at), ("closed_at", a.closed_at)):
            if ts is None:
                continue
            problem = time_problem(ts) or window.problem(ts, now, "the hub's clock")
            if problem is not None:
                problems.append({**where, "field": f"alerts.{name}", "message": problem})
        if len(problems) >= 100:
            break
    return problems


def mark_problems(batch: Batch, window: TsWindow, now: float) -> list[dict[str, Any]]:
    """Sparkplug stale/fresh marks: their ``at`` is kept per sensor and shown as a time."""
    problems: list[dict[str, Any]] = []
    for i, m in enumerate(batch.marks):
        problem = time_problem(m.at) or window.problem(m.at, now, "the hub's clock")
        if problem is not None:
            problems.append({"mark_index": i, "field": "marks.at", "message": problem})
        if len(problems) >= 100:
            break
    return problems


@dataclass(frozen=True, slots=True)
class SensorLimits:
    per_batch: int
    per_factory: int


def new_sensor_problems(
    batch: Batch, known: Collection[str], factory_sensors: int, limits: SensorLimits
) -> tuple[list[dict[str, Any]], str | None]:
    """Readings whose key would be a new sensor past a limit: (details naming their seq,
    the limit that was hit: "max_new_sensors_per_batch" or "max_sensors_per_factory").

    New keys are admitted in the order the batch first names them, up to the smaller of
    what is left of the factory's allowance and the per-batch limit; readings of any later
    new key are refused. Readings of known sensors are never refused here."""
    new_keys: list[str] = []
    seen: set[str] = set(known)
    for r in batch.readings:
        if r.key not in seen:
            seen.add(r.key)
            new_keys.append(r.key)
    for a in batch.alerts:
        if a.key not in seen:
            seen.add(a.key)
            new_keys.append(a.key)
    room_factory = max(0, limits.per_factory - factory_sensors)
    allowed = min(limits.per_batch, room_factory)
    if len(new_keys) <= allowed:
        return [], None
    if room_factory < limits.per_batch:
        limit, cap = "max_sensors_per_factory", limits.per_factory
        message = (
            f"would be a new sensor past max_sensors_per_factory = {cap} "
            f"(the factory has {factory_sensors}); ask the hub's operator to raise it"
        )
    else:
        limit, cap = "max_new_sensors_per_batch", limits.per_batch
        message = f"would be a new sensor past max_new_sensors_per_batch = {cap} in one batch"
    refused = set(new_keys[allowed:])
    details: list[dict[str, Any]] = [
        {"index": i, "seq": r.seq, "field": "key", "limit": limit, "message": message}
        for i, r in enumerate(batch.readings)
        if r.key in refused
    ]
    details += [
        {
            "alert_index": i,
            "alert_id": a.id,
            "field": "alerts.key",
            "limit": limit,
            "message": message,
        }
        for i, a in enumerate(batch.alerts)
        if a.key in refused
    ]
    return details, limit

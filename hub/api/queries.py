"""The read side of the API: parse and validate parameters, ask storage, shape the answer.

Each public function takes the storage and plain ``str -> str`` parameters (already
percent-decoded) and returns ``(data, meta)`` for the envelope, or raises ApiError. Nothing
here knows about Robyn, so the functions are testable without a server.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from hub.api import history
from hub.errors import bad_param, not_found
from hub.storage import Storage
from shared.timeutil import now, parse_ts, to_rfc3339

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
ONLINE_WITHIN_S = 60.0
MAX_INT = 2**63 - 1
# 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write (hub.batchcheck.MAX_TS).
MAX_TS = 253402300799.999

_BUCKET = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MIN_BUCKET_S = 0.001
MAX_BUCKET_S = 366 * 86400.0

Params = Mapping[str, str]
Result = tuple[Any, dict[str, Any]]


# -- parameter parsing -------------------------------------------------------------------


def _as_int(raw: str | None) -> int | None:
    text = (raw or "").strip()
    # isascii: str.isdigit() also accepts digits like "²" that int() rejects.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


def parse_id(name: str, raw: str | None) -> int:
    value = _as_int(raw)
    if value is None or not 0 < value <= MAX_INT:
        raise bad_param(name, f"must be a positive integer, got {raw!r}")
    return value


def optional_id(params: Params, name: str) -> int | None:
    raw = params.get(name)
    return None if raw is None or raw == "" else parse_id(name, raw)


def parse_time(params: Params, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    value: object = text
    with contextlib.suppress(ValueError):
        value = float(text)
    try:
        ts = parse_ts(value)
    except (ValueError, OverflowError):
        # OverflowError: an RFC 3339 time whose offset pushes it past year 1 or 9999.
        raise bad_param(name, f"must be epoch seconds or RFC 3339, got {raw!r}") from None
    # Every answer writes its range back as RFC 3339: a time past 9999-12-31 has no such
    # form (1e15, or 9999-12-31T23:59:59-01:00, which is in the year 10000 in UTC).
    if ts > MAX_TS:
        raise bad_param(
            name, f"must not be after 9999-12-31T23:59:59Z (epoch {int(MAX_TS)}), got {raw!r}"
        )
    return ts


def parse_range(params: Params) -> tuple[float | None, float | None]:
    start, end = parse_time(params, "from"), parse_time(params, "to")
    if start is not None and end is not None and end < start:
        raise bad_param("to", "must not be before 'from'")
    return start, end


def parse_limit(params: Params, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    value = _as_int(raw)
    if value is None or not 1 <= value <= maximum:
        raise bad_param("limit", f"must be an integer from 1 to {maximum}, got {raw!r}")
    return value


def parse_bucket(params: Params, default: str = "60s") -> float:
    raw = params.get("bucket") or default
    match = _BUCKET.match(raw.strip())
    if match is None:
        raise bad_param("bucket", f"must look like 10s, 5m, 1h or 1d, got {raw!r}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not MIN_BUCKET_S <= seconds <= MAX_BUCKET_S:
        raise bad_param("bucket", f"must be between 1ms and 366d, got {raw!r}")
    return seconds


def _range_meta(start: float | None, end: float | None) -> dict[str, Any]:
    return {
        "from": None if start is None else to_rfc3339(start),
        "to": None if end is None else to_rfc3339(end),
    }


def _time(ts: float | None) -> str | None:
    return None if ts is None else to_rfc3339(ts)


# -- model ------------------------------------------------------------------------------


def gateway_view(row: dict[str, Any], at: float) -> dict[str, Any]:
    last_seen = row["last_seen"]
    if row["revoked"]:
        status = "revoked"
    elif last_seen is None:
        status = "never_seen"
    elif at - last_seen <= ONLINE_WITHIN_S:
        status = "online"
    else:
        status = "offline"
    return {
        "id": row["name"],
        "name": row["name"],
        "factory": row["factory"],
        "factory_id": row["factory_id"],
        "status": status,
        "last_seen": _time(last_seen),
        "last_seen_age_s": None if last_seen is None else round(max(0.0, at - last_seen), 3),
        "backlog": row["backlog"],
        "dropped": row["dropped"],
        "dead_letters": row["dead_letters"],
        "agent_version": row["agent_version"] or None,
        "created_at": _time(row["created_at"]),
    }


def list_gateways(storage: Storage, params: Params) -> Result:
    at = now()
    rows = [gateway_view(row, at) for row in storage.list_gateways()]
    return rows, {"count": len(rows)}


def get_gateway(storage: Storage, name: str) -> Result:
    row = storage.get_gateway(name)
    if row is None:
        raise not_found("gateway", repr(name))
    return gateway_view(row, now()), {}


def list_factories(storage: Storage, params: Params) -> Result:
    rows = [{**row, "created_at": _time(row["created_at"])} for row in storage.list_factories()]
    return rows, {"count": len(rows)}


def list_machines(storage: Storage, params: Params) -> Result:
    factory_id = optional_id(params, "factory_id")
    rows = [
        {**row, "created_at": _time(row["created_at"])} for row in storage.list_machines(factory_id)
    ]
    return rows, {"count": len(rows)}


def sensor_view(row: dict[str, Any], stale: bool = False) -> dict[str, Any]:
    view = dict(row)
    view["created_at"] = _time(row["created_at"])
    view["thresholds"] = {
        "min": view.pop("min_threshold"),
        "max": view.pop("max_threshold"),
        "deadband": view.pop("deadband"),
    }
    # Stale: the gateway that feeds it is offline (storage.stale_sensors), or it says so.
    view["stale"] = bool(view.get("stale")) or stale
    return view


def list_sensors(storage: Storage, params: Params) -> Result:
    machine_id = optional_id(params, "machine_id")
    factory_id = optional_id(params, "factory_id")
    key = params.get("key") or None
    if key is not None and (len(key.split("/")) != 3 or not all(key.split("/"))):
        raise bad_param("key", f"must be line/machine/sensor, got {key!r}")
    found = storage.list_sensors(machine_id=machine_id, key=key, factory_id=factory_id)
    stale = storage.stale_sensors(row["id"] for row in found)
    rows = [sensor_view(row, row["id"] in stale) for row in found]
    return rows, {"count": len(rows)}


def sensor_row(storage: Storage, raw_id: str | None) -> dict[str, Any]:
    sensor_id = parse_id("id", raw_id)
    row = storage.get_sensor(sensor_id)
    if row is None:
        raise not_found("sensor", sensor_id)
    return row


def get_sensor(storage: Storage, raw_id: str | None) -> Result:
    row = sensor_row(storage, raw_id)
    return sensor_view(row, row["id"] in storage.stale_sensors([row["id"]])), {}


# -- time series ------------------------------------------------------------------------


def readings(storage: Storage, raw_id: str | None, params: Params) -> Result:
    sensor = sensor_row(storage, raw_id)
    start, end = parse_range(params)
    limit = parse_limit(params)
    rows = storage.readings(sensor["id"], start, end, limit + 1)
    truncated = len(rows) > limit
    data = [
        {"id": rid, "ts": ts, "time": to_rfc3339(ts), "value": value}
        for rid, ts, value in rows[:limit]
    ]
    meta = {"sensor_id": sensor["id"], "count": len(data), "limit": limit, "truncated": truncated}
    # A client pages on by asking again from just after the last timestamp it got.
    if truncated:
        meta["next_from"] = data[-1]["ts"]
    return data, {**meta, **_range_meta(start, end)}


def series(storage: Storage, raw_id: str | None, params: Params) -> Result:
    sensor = sensor_row(storage, raw_id)
    start, end = parse_range(params)
    points = history.parse_points(params)
    if points is None:
        bucket: float | None = parse_bucket(params)
        limit = parse_limit(params, default=MAX_LIMIT)
    else:
        # The hub picks the bucket (hub.api.history); None: nothing stored in the range.
        bucket, limit = history.points_bucket(storage, sensor["id"], start, end, points), points
    rows = [] if bucket is None else storage.buckets(sensor["id"], start, end, bucket, limit + 1)
    truncated = len(rows) > limit
    data = [
        {
            "ts": b,
            "time": to_rfc3339(b),
            "min": lo,
            "max": hi,
            "avg": avg,
            "count": count,
            "first": first,
            "last": last,
        }
        for b, lo, hi, avg, count, _, first, _, last in rows[:limit]
    ]
    meta = {
        "sensor_id": sensor["id"],
        "bucket_s": bucket,
        "points": points,
        "count": len(data),
        "truncated": truncated,
    }
    return data, {**meta, **_range_meta(start, end)}


def stats(storage: Storage, raw_id: str | None, params: Params) -> Result:
    sensor = sensor_row(storage, raw_id)
    start, end = parse_range(params)
    lo, hi, avg, count, first, last = storage.stats(sensor["id"], start, end)
    data = {
        "sensor_id": sensor["id"],
        "count": count,
        "min": lo,
        "max": hi,
        "avg": avg,
        "first": _time(first),
        "last": _time(last),
        "unit": sensor["unit"],
    }
    return data, _range_meta(start, end)


def latest(storage: Storage, raw_id: str | None) -> Result:
    sensor = sensor_row(storage, raw_id)
    row = storage.latest(sensor["id"])
    if row is None:
        raise not_found("reading for sensor", sensor["id"])
    rid, ts, value = row
    return {
        "id": rid,
        "sensor_id": sensor["id"],
        "ts": ts,
        "time": to_rfc3339(ts),
        "value": value,
        "unit": sensor["unit"],
    }, {}

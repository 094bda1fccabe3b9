"""Readings beyond the plain list: bulk back-fill, a rolling average, CSV export.

* ``POST /readings/bulk`` (admin): ``[{"sensor_id", "value", "timestamp"}, ...]`` as the
  seeds' bulk ingestion; 201 ``{inserted, duplicates, duration_ms}``. Idempotent: each
  (sensor, timestamp) is stored once however often it is posted (hub.storage.bulk). All or
  nothing: one bad row (a value that is not finite or beyond ±1e15, a time outside the hub's
  ts window, a sensor that does not exist) is a 422 naming its index and field, and nothing
  is stored.
* ``GET /sensors/:id/readings?rolling=N``: each reading carries ``rolling_avg``, the
  average of the last N readings up to it; ``?format=csv``: the same rows as CSV, and
  without ``limit`` every reading of the range, streamed (hub.api.export).
"""

from __future__ import annotations

import contextlib
import re
from time import perf_counter
from typing import Any

import msgspec

from hub.api import crud_spec as _spec  # noqa: F401  (describes these routes)
from hub.api import export, queries, readcost
from hub.api.bodies import MAX_INT64, NAMED_FIELD, invalid
from hub.api.csv_out import csv_answer, csv_bytes, parse_format
from hub.api.http import API, Ctx, Raw, Result, Route, Services, charged, created
from hub.api.queries import parse_limit, parse_range, sensor_row
from hub.api.queries import readings as plain_readings
from hub.api.readcost import is_export
from hub.api.scope import by_id, in_body
from hub.auth import READ_ROLES
from hub.errors import ApiError, bad_param
from hub.storage import Storage
from hub.storage.bulk import UnknownSensors
from shared.payload import TsWindow
from shared.timeutil import now, parse_ts, to_rfc3339
from shared.values import value_problem

MAX_BULK_ROWS = 10_000
MAX_ROLLING = 10_000
# Problems named in one 422: enough to fix a body, never a second body's worth of text.
MAX_DETAILS = 50
# 9999-12-31T23:59:59.999Z: the last instant an answer can write as RFC 3339.
MAX_TS = 253402300799.999
_AT = re.compile(r"`\$\[(\d+)\](?:\.(\w+))?`")


class BulkItem(msgspec.Struct, forbid_unknown_fields=True):
    sensor_id: int
    value: float
    timestamp: float | str


# -- readings with a rolling average, CSV ------------------------------------------------


def parse_rolling(params: dict[str, str]) -> int | None:
    raw = params.get("rolling")
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    value = int(text) if text.isascii() and text.isdigit() and len(text) < 8 else 0
    if not 1 <= value <= MAX_ROLLING:
        raise bad_param("rolling", f"must be an integer from 1 to {MAX_ROLLING}, got {raw!r}")
    return value


def readings(storage: Storage, ctx: Ctx) -> Any:
    """``GET /sensors/:id/readings``: JSON or CSV, with or without ``rolling_avg``."""
    params = ctx.params
    fmt = parse_format(params)
    window = parse_rolling(params)
    raw_id = ctx.path("id")
    if is_export(params):
        assert ctx.reads is not None  # the route is charged (hub.api.readcost)
        sensor = sensor_row(storage, raw_id)
        start, end = parse_range(params)
        return export.readings(storage, ctx.reads, sensor["id"], start, end, window)
    if window is None:
        data, meta = plain_readings(storage, raw_id, params)
    else:
        sensor = sensor_row(storage, raw_id)
        start, end = parse_range(params)
        limit = parse_limit(params)
        rows = storage.rolling_readings(sensor["id"], start, end, limit + 1, window)
        truncated = len(rows) > limit
        data = [
            {"id": rid, "ts": ts, "time": to_rfc3339(ts), "value": value, "rolling_avg": avg}
            for rid, ts, value, avg in rows[:limit]
        ]
        meta = {
            "sensor_id": sensor["id"],
            "count": len(data),
            "limit": limit,
            "truncated": truncated,
            "rolling": window,
            "from": None if start is None else to_rfc3339(start),
            "to": None if end is None else to_rfc3339(end),
        }
        if truncated:
            meta["next_from"] = data[-1]["ts"]
    if fmt == "json":
        return data, meta
    columns = ["id", "ts", "time", "value"] + (["rolling_avg"] if window else [])
    body = csv_bytes(columns, ([row[c] for c in columns] for row in data))
    # What JSON says in meta, CSV says in headers: was the answer cut at ``limit``, and
    # where the next request starts.
    headers = {"X-Truncated": "true" if meta["truncated"] else "false"}
    if meta.get("next_from") is not None:
        headers["X-Next-From"] = repr(meta["next_from"])
    return csv_answer(body, f"sensor-{meta['sensor_id']}-readings.csv", headers)


# -- bulk back-fill ------------------------------------------------------------------------


def _timestamp(raw: float | str) -> float:
    if isinstance(raw, str):
        text: object = raw.strip()
        with contextlib.suppress(ValueError):
            text = float(raw)
        return parse_ts(text)
    return parse_ts(raw)


def parse_bulk(body: bytes, window: TsWindow, at: float) -> list[tuple[int, float, float]]:
    """The rows of a bulk body, or 400 (not JSON) / 422 naming each bad row's index."""
    if not body.strip():
        raise invalid([{"field": "body", "message": "a JSON array of readings is required"}])
    try:
        items = msgspec.json.decode(body, type=list[BulkItem])
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = _AT.search(text)
        detail: dict[str, Any] = {"field": "body", "message": text}
        if where is not None:
            # "... - at `$[3].value`": the row's index and its field, as for other problems.
            named = NAMED_FIELD.search(text)  # an unknown or missing field of that row
            field = where.group(2) or (named.group(1) if named else "body")
            index = int(where.group(1))
            detail = {"index": index, "field": field, "message": text}
        raise invalid([detail], "readings") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not items:
        raise invalid([{"field": "body", "message": "at least one reading is required"}])
    if len(items) > MAX_BULK_ROWS:
        raise ApiError(
            413,
            "too_many_readings",
            f"{len(items)} readings in one body; at most {MAX_BULK_ROWS}",
            [{"field": "body", "message": f"at most {MAX_BULK_ROWS} readings per request"}],
        )
    rows: list[tuple[int, float, float]] = []
    details: list[dict[str, Any]] = []

    def bad(index: int, field: str, message: str) -> None:
        if len(details) < MAX_DETAILS:
            details.append({"index": index, "field": field, "message": message})

    for i, item in enumerate(items):
        ok = True
        if not 0 < item.sensor_id <= MAX_INT64:
            bad(i, "sensor_id", "must be a positive integer (at most 2^63-1)")
            ok = False
        if bad_value := value_problem(item.value):
            bad(i, "value", bad_value)
            ok = False
        try:
            ts = _timestamp(item.timestamp)
        except (ValueError, OverflowError) as exc:
            bad(i, "timestamp", str(exc))
            continue
        if ts > MAX_TS:
            bad(i, "timestamp", "must not be after 9999-12-31T23:59:59Z")
            continue
        problem = window.problem(ts, at, "the hub's clock")
        if problem is not None:
            bad(i, "timestamp", problem)
            continue
        if ok:
            rows.append((item.sensor_id, ts, item.value))
    if details:
        raise invalid(details, "readings")
    return rows


def bulk(hub: Services, ctx: Ctx) -> Raw:
    started = perf_counter()
    assert ctx.principal is not None
    if len(ctx.body) > hub.settings.max_body_bytes:
        raise ApiError(
            413,
            "body_too_large",
            f"body of {len(ctx.body)} bytes exceeds max_body_bytes ({hub.settings.max_body_bytes})",
        )
    rows = parse_bulk(ctx.body, hub.settings.ts_window(), now())
    try:
        inserted = hub.storage.bulk_insert(rows, ctx.principal)
    except UnknownSensors as exc:
        first: dict[int, int] = {}
        for i, (sensor_id, _, _) in enumerate(rows):
            first.setdefault(sensor_id, i)
        details = [
            {"index": first[s], "field": "sensor_id", "message": f"no sensor with id {s}"}
            for s in exc.missing[:MAX_DETAILS]
        ]
        raise invalid(details, "readings") from None
    data = {
        "inserted": inserted,
        "duplicates": len(rows) - inserted,
        "duration_ms": round((perf_counter() - started) * 1e3, 3),
    }
    return created(ctx, data)


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_readings(ctx: Ctx) -> Any:
        """Raw readings, oldest first (?from=&to=&limit=); ?rolling=N adds rolling_avg,
        ?format=csv answers CSV."""
        return readings(storage, ctx)

    def h_series(ctx: Ctx) -> Result:
        """min/max/avg/count per time bucket (?from=&to=&bucket=60s)."""
        return queries.series(storage, ctx.path("id"), ctx.params)

    def h_stats(ctx: Ctx) -> Result:
        """min/max/avg/count over a range (all readings without one)."""
        return queries.stats(storage, ctx.path("id"), ctx.params)

    def h_latest(ctx: Ctx) -> Result:
        """The newest reading of a sensor."""
        return queries.latest(storage, ctx.path("id"))

    def h_bulk(ctx: Ctx) -> Any:
        """Back-fill readings [{sensor_id, value, timestamp}, ...] (201); each (sensor,
        timestamp) is stored once, however often it is posted."""
        return bulk(hub, ctx)

    sensor = f"{API}/sensors/:id"
    own, backfill = by_id("sensor"), in_body("sensor", "sensor_id", "readings")
    return [
        Route("GET", f"{sensor}/readings", READ_ROLES, h_readings, charged(readcost.readings), own),
        Route("GET", f"{sensor}/series", READ_ROLES, h_series, charged(readcost.series), own),
        Route("GET", f"{sensor}/stats", READ_ROLES, h_stats, scope=own),
        Route("GET", f"{sensor}/latest", READ_ROLES, h_latest, scope=own),
        Route("POST", f"{API}/readings/bulk", ("admin",), h_bulk, scope=backfill),
    ]

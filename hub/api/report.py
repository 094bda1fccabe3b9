"""``GET /factories/:id/report?from=&to=``: per sensor of a factory, min/max/avg/count of its
readings, how many alerts it had and how long it was in alert; JSON or ``?format=csv``.

Statistics come from :meth:`Storage.stats` (answered from rollups: a year costs what an
hour does). Time in alert is the union of the sensor's alert intervals clipped to the
range, so two rules firing at once count their overlap once; an alert still active counts
up to ``to``, or up to now without one. Without ``from`` the range starts at the first
alert. Paged by sensor (``page``/``per_page``) like every list; the CSV without either is
every sensor of the factory, streamed (hub.api.export).

The CSV is a file for people: named for the factory and the period
(``plant-1-report-2026-12-06T0800Z-2026-12-07T0800Z.csv``), its averages rounded to 4
significant digits (an average is an estimate; 21.4567 reads as 21.46), min and max exact as
stored (they are readings), time in alert to the millisecond. The JSON keeps every digit.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import defaultdict
from typing import Any

from hub.api import export, readcost
from hub.api.csv_out import csv_answer, csv_bytes, parse_format
from hub.api.http import API, Ctx, Raw, Route, Services, charged
from hub.api.pagination import paged, parse_page
from hub.api.queries import parse_id, parse_range
from hub.api.scope import by_id
from hub.auth import READ_ROLES
from hub.errors import not_found
from hub.storage import Storage
from shared.timeutil import now, to_rfc3339

COLUMNS = (
    "sensor_id",
    "key",
    "name",
    "unit",
    "count",
    "min",
    "max",
    "avg",
    "alerts",
    "time_in_alert_s",
)


def time_in_alert(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``intervals`` (each already clipped to the range)."""
    total = 0.0
    current: tuple[float, float] | None = None
    for lo, hi in sorted(intervals):
        if current is None or lo > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (lo, hi)
        else:
            current = (current[0], max(current[1], hi))
    if current is not None:
        total += current[1] - current[0]
    return total


def sensor_alerts(
    alerts: list[dict[str, Any]], start: float | None, end: float
) -> dict[int, tuple[int, float]]:
    """sensor id -> (alerts active in the range, seconds in alert)."""
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for a in alerts:
        lo = float(a["opened_at"]) if start is None else max(float(a["opened_at"]), start)
        cleared = a["cleared_at"]
        hi = end if cleared is None else min(float(cleared), end)
        spans[int(a["sensor_id"])].append((lo, max(lo, hi)))
    return {s: (len(v), round(time_in_alert(v), 3)) for s, v in spans.items()}


AVG_DIGITS = 4


def for_people(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row: the average to AVG_DIGITS significant digits, the rest as it is."""
    avg = row["avg"]
    return row if avg is None else {**row, "avg": float(f"{avg:.{AVG_DIGITS}g}")}


def _stamp(ts: float) -> str:
    # No colons: a file name that Windows takes too.
    return time.strftime("%Y-%m-%dT%H%MZ", time.gmtime(ts))


def filename(factory_id: int, name: str, start: float | None, end: float) -> str:
    """``<factory>-report-<from>-<to>.csv``: the name in ASCII letters, digits, ``.``, ``_``
    and ``-`` (the rest becomes ``-``; a name with none of them: ``factory-<id>``), the
    period in UTC, ``start`` when the range begins at the first alert."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip("-.")[:64] or f"factory-{factory_id}"
    begin = "start" if start is None else _stamp(start)
    return f"{slug}-report-{begin}-{_stamp(end)}.csv"


def report(storage: Storage, ctx: Ctx) -> Any:
    factory_id = parse_id("id", ctx.path("id"))
    params = ctx.params
    fmt = parse_format(params)
    start, end = parse_range(params)
    page = parse_page(params)
    factory = storage.get_factory(factory_id)
    if factory is None:
        raise not_found("factory", factory_id)
    until = now() if end is None else end
    intervals = storage.factory_alert_intervals(factory_id, start, end)
    assert ctx.reads is not None  # the route is charged (hub.api.readcost)
    # Found only now: the report's own charge was one page of sensors.
    ctx.reads.debit(len(intervals))
    alerts = sensor_alerts(intervals, start, until)

    def page_rows(offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        sensors, total = storage.sensors_page(offset, limit, factory_id=factory_id)
        rows: list[dict[str, Any]] = []
        for sensor in sensors:
            lo, hi, avg, count, _, _ = storage.stats(sensor["id"], start, end)
            n_alerts, in_alert = alerts.get(sensor["id"], (0, 0.0))
            rows.append(
                {
                    "sensor_id": sensor["id"],
                    "key": sensor["key"],
                    "name": sensor["name"],
                    "unit": sensor["unit"],
                    "count": count,
                    "min": lo,
                    "max": hi,
                    "avg": avg,
                    "alerts": n_alerts,
                    "time_in_alert_s": in_alert,
                }
            )
        return rows, total

    name = filename(factory_id, factory["name"], start, until)
    if fmt == "csv" and not (params.get("page") or params.get("per_page")):

        def csv_rows(offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
            rows, total = page_rows(offset, limit)
            return [for_people(r) for r in rows], total

        return export.report(ctx.reads, name, COLUMNS, csv_rows)
    rows, total = page_rows(page.offset, page.limit)
    extra = {
        "factory_id": factory_id,
        "factory": factory["name"],
        "from": None if start is None else to_rfc3339(start),
        "to": None if end is None else to_rfc3339(end),
    }
    if fmt == "csv":
        body = csv_bytes(COLUMNS, ([for_people(r)[c] for c in COLUMNS] for r in rows))
        headers = {"X-Total-Count": str(total), "X-Page": str(page.page)}
        return csv_answer(body, name, headers)
    return paged(ctx, rows, page, total, extra)


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_report(ctx: Ctx) -> Raw:
        """Per sensor of a factory: min/max/avg/count, alerts and time in alert (?from=&to=,
        ?format=csv)."""
        result: Raw = report(storage, ctx)
        return result

    path = f"{API}/factories/:id/report"
    return [Route("GET", path, READ_ROLES, h_report, charged(readcost.page), by_id("factory"))]

"""What each read may answer, in rows, from its parameters alone: the read budget's up-front
charge (hub.ratelimit.ReadBudget).

Every route that can answer many rows has an estimate here (hub.app charges it before the
handler runs). Rows a read finds only while it runs are charged then, through the request's
:class:`hub.ratelimit.ReadCharge`: the pages of a streamed export and the alert intervals
behind a factory's report. ``stats`` and ``latest`` answer one row, from
rollups and an index: they are not charged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from hub.api import history
from hub.api.pagination import parse_page
from hub.api.queries import MAX_LIMIT, parse_bucket, parse_limit, parse_range
from shared.timeutil import now

Params = Mapping[str, str]
Estimate = Callable[[Params], int]

# A sensor's alert check (GET /sensors/:id/alerts): hub.api.thresholds' bounds.
ALERT_LIMIT, MAX_ALERT_LIMIT = 100, 100_000
# GET /sensors/:id/anomalies: hub.api.anomalies' bounds.
ANOMALY_LIMIT, MAX_ANOMALY_LIMIT = 100, 10_000
# Rows per page of a streamed export: small enough that a page never holds the
# interpreter for long, large enough that a week of 1 Hz readings is ~120 queries.
EXPORT_PAGE = 5_000


def is_export(params: Params) -> bool:
    """A CSV without ``limit`` is an export of the whole range, streamed page by page."""
    return (params.get("format") or "").strip().lower() == "csv" and not params.get("limit")


def readings(params: Params) -> int:
    if is_export(params):
        return 0  # each page is charged as it is read (hub.api.export)
    rows = parse_limit(params)
    rolling = params.get("rolling")
    # ?rolling=N also reads the N-1 readings before the range.
    text = (rolling or "").strip()
    if text.isascii() and text.isdigit() and len(text) < 8:
        rows += max(0, int(text) - 1)
    return rows


def series(params: Params, at: Callable[[], float] = now) -> int:
    """The most buckets a series can answer: ``points``, else its limit, or fewer when the
    range bounds it. A missing ``to`` is now: "the last hour" at 60 s is ~61 buckets."""
    start, end = parse_range(params)
    points = history.parse_points(params)
    if points is not None:
        return points
    bucket = parse_bucket(params)
    limit = parse_limit(params, default=MAX_LIMIT)
    if start is None:
        return limit
    end = max(start, at()) if end is None else end
    return min(limit, math.ceil((end - start) / bucket) + 1)


def sensor_alerts(params: Params) -> int:
    # The last `limit` readings are checked, and up to `limit` edge alerts come beside them.
    return 2 * parse_limit(params, default=ALERT_LIMIT, maximum=MAX_ALERT_LIMIT)


def anomalies(params: Params) -> int:
    return parse_limit(params, default=ANOMALY_LIMIT, maximum=MAX_ANOMALY_LIMIT)


def page(params: Params) -> int:
    """A paged list (gateways, the model, alerts and a journal, the audit log, a report):
    one page."""
    return parse_page(params).per_page


# The alarm KPI report's answer: its figures and top sources. The alarm rows it is computed
# from are found only while it runs and charged then (hub.api.alarm_report).
ALARM_REPORT_ROWS = 100


def alarm_report(params: Params) -> int:
    return ALARM_REPORT_ROWS

"""``GET /alarm-report?from=&to=&factory_id=``: how the alarm system performed over a period,
per factory (the operator position) or the whole fleet, against the ISA-18.2 / EEMUA 191
figures; JSON or ``?format=csv`` (one ``metric,value`` row per figure).

The period defaults to the day before ``to`` (default now). The figures' definitions are in
hub.api.alarm_kpis; the rows they come from are one snapshot (hub.storage.alarm_report),
charged to the read budget as they are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hub.alert_settings import AlarmSettings
from hub.api import alarm_kpis as kpi
from hub.api import readcost
from hub.api.alarms import MAX_SHELVE_S
from hub.api.csv_out import csv_answer, csv_bytes, parse_format
from hub.api.http import API, Ctx, Raw, Result, Route, Services, charged
from hub.api.queries import optional_id, parse_range
from hub.api.scope import LISTED
from hub.auth import READ_ROLES
from hub.errors import ApiError, bad_param, not_found
from hub.storage import Storage
from shared.timeutil import now, to_rfc3339

DEFAULT_PERIOD_S = 86400.0
# Rows of alarm history one report may hold in memory: a year at 1,000 alarms a day, three
# times ISA-18.2's "maximum manageable", fits with room to spare.
MAX_ROWS = 500_000
# The figures use the hub's own [alarms] marks settings, so the report counts as chattering
# and stale what the hub marks so (defaults: ISA-18.2's 3 in 60 s, 24 h).
DEFAULTS = AlarmSettings.model_validate({})
STALE_AFTER_S = DEFAULTS.stale_after_s


def parse_period(params: dict[str, str], at: float) -> kpi.Period:
    start, end = parse_range(params)
    if end is None and start is not None and start >= at:
        # Without `to` the period ends now: a `from` in the future is the mistake.
        raise bad_param("from", "must be before now when 'to' is not given")
    end = at if end is None else end
    start = end - DEFAULT_PERIOD_S if start is None else start
    if end <= start:
        raise bad_param("to", "must be after 'from' (the period cannot be empty)")
    return kpi.Period(start, end)


def alarm_report(storage: Storage, ctx: Ctx, marks: AlarmSettings = DEFAULTS) -> dict[str, Any]:
    params = ctx.params
    at = now()
    period = parse_period(params, at)
    factory_id = optional_id(params, "factory_id")
    scope = ctx.scope
    # Another factory than the caller's is answered as one that does not exist.
    outside = scope is not None and factory_id not in scope
    if factory_id is not None and (outside or storage.get_factory(factory_id) is None):
        raise not_found("factory", factory_id)
    history = storage.alarm_history(
        period.start,
        period.end,
        factory_id,
        stale_after_s=marks.stale_after_s,
        shelves_since=period.start - MAX_SHELVE_S,
        limit=MAX_ROWS,
        factories=scope,
    )
    if ctx.reads is not None:
        ctx.reads.debit(
            len(history.alarms) + len(history.stale) + len(history.shelves) + len(history.service)
        )
    if history.truncated:
        raise ApiError(
            422,
            "too_many_alarms",
            f"the period holds more than {MAX_ROWS} alarms; ask for a shorter one",
            [{"param": "from", "message": "narrow the period"}],
        )
    alarms = history.alarms
    times = [a[0] for a in alarms]
    count = len(alarms)
    return {
        "factory_id": factory_id,
        "from": to_rfc3339(period.start),
        "to": to_rfc3339(period.end),
        "alarms": count,
        "per_day_avg": round(count / (period.seconds / 86400.0), 6),
        "per_10min_avg": round(count / (period.seconds / kpi.WINDOW_S), 6),
        "per_10min_peak": kpi.peak_per_window(times, period),
        "floods": kpi.floods(times, period),
        "top_sources": top_sources(storage, alarms),
        "chattering": kpi.chattering(
            alarms, period, marks.chattering_count, marks.chattering_window_s
        ),
        "stale": kpi.stale(history.stale, period, marks.stale_after_s),
        "shelved": kpi.shelved(history.shelves, period, at),
        "out_of_service": kpi.out_of_service(history.service, history.suppressed, period, at),
        "severity_mix": kpi.severity_mix(alarms),
        "ack_time_s": kpi.ack_times(alarms),
        "targets": kpi.TARGETS,
        "rate": kpi.rate(times, period),
    }


def top_sources(storage: Storage, alarms: list[Any]) -> list[dict[str, Any]]:
    top = kpi.top_sources(alarms)
    sensors = {s for (s, _), _ in top if s is not None}
    gateways = {g for (s, g), _ in top if s is None}
    keys, names = storage.alarm_source_names(sensors, gateways)
    return [
        {
            "sensor_id": s,
            "key": None if s is None else keys.get(s),
            "gateway_id": names.get(g) if s is None else None,
            "count": n,
            "share": round(n / len(alarms), 6),
        }
        for (s, g), n in top
    ]


def csv_rows(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested figures as ``(dotted.name, value)`` rows; list items are numbered from 1."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from csv_rows(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value, start=1):
            yield from csv_rows(v, f"{prefix}.{i}")
    else:
        yield prefix, value


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_alarm_report(ctx: Ctx) -> Result | Raw:
        """Alarm KPIs over a period against the ISA-18.2 / EEMUA 191 figures (?from=&to=,
        ?factory_id=, ?format=csv)."""
        fmt = parse_format(ctx.params)
        report = alarm_report(storage, ctx, hub.settings.alarms)
        if fmt == "csv":
            # The rate is a series for a chart, not a figure: left out of the CSV's rows.
            figures = {k: v for k, v in report.items() if k != "rate"}
            body = csv_bytes(("metric", "value"), csv_rows(figures))
            return csv_answer(body, "alarm-report.csv")
        return report, {}

    return [
        Route(
            "GET",
            f"{API}/alarm-report",
            READ_ROLES,
            h_alarm_report,
            charged(readcost.alarm_report),
            LISTED,
        )
    ]

"""Thresholds set centrally: the admin PUT, the gateway's config, and the alerts check.

A threshold change bumps its factory's ``config_version``. Every ingest answer carries
that version, so an agent notices a change on its next sync and fetches
``GET /gateways/:id/config``; it keeps checking with the last rules it got while the hub is
unreachable (invariant 5).

``threshold_checker`` (the Rust module) is imported lazily: a hub without the native
module still starts and serves everything but ``/alerts``, which answers 503.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import msgspec

from hub.api import key_owner
from hub.api.queries import Result, parse_id, parse_limit, sensor_row, sensor_view
from hub.auth import Principal
from hub.errors import ApiError, forbidden, not_found
from hub.storage import Storage, Thresholds
from shared.timeutil import to_rfc3339
from shared.values import value_problem

DEFAULT_ALERT_LIMIT = 100
MAX_ALERT_LIMIT = 100_000


class ThresholdBody(msgspec.Struct, forbid_unknown_fields=True):
    """PUT body. ``min``/``max`` absent or null: no bound (PUT replaces the whole rule)."""

    min: float | None = None
    max: float | None = None
    deadband: float = 0.0


_body = msgspec.json.Decoder(ThresholdBody)
_AT_FIELD = re.compile(r"at `\$\.(\w+)`$")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        f"invalid {field!r}: {message}",
        [{"field": field, "message": message}],
    )


def parse_thresholds(body: bytes) -> Thresholds:
    try:
        parsed = _body.decode(body)
    except msgspec.ValidationError as exc:
        # msgspec ends its message with "- at `$.max`" when one field is at fault.
        at = _AT_FIELD.search(str(exc))
        field = at.group(1) if at else "body"
        raise ApiError(
            422,
            "validation_error",
            f"invalid thresholds: {exc}",
            [{"field": field, "message": str(exc)}],
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    for name in ("min", "max", "deadband"):
        value = getattr(parsed, name)
        problem = None if value is None else value_problem(value)
        if problem is not None:
            raise _invalid(name, problem)
    if parsed.min is not None and parsed.max is not None and parsed.min > parsed.max:
        raise _invalid("min", f"must not be above max ({parsed.min} > {parsed.max})")
    if parsed.deadband < 0:
        raise _invalid("deadband", "must be >= 0")
    return Thresholds(min=parsed.min, max=parsed.max, deadband=parsed.deadband)


def put_thresholds(
    storage: Storage, raw_id: str | None, body: bytes, principal: Principal
) -> Result:
    sensor_id = parse_id("id", raw_id)
    thresholds = parse_thresholds(body)
    version = storage.set_thresholds(sensor_id, thresholds, actor=principal)
    if version is None:
        raise not_found("sensor", sensor_id)
    return sensor_view(sensor_row(storage, raw_id)), {"config_version": version}


def gateway_config(storage: Storage, principal: Principal, name: str) -> Result:
    # A gateway may read only its own config; operators may read any.
    if principal.role == "gateway" and principal.gateway_name != name:
        raise forbidden(f"this token belongs to gateway {principal.gateway_name!r}, not {name!r}")
    found = storage.gateway_config(name)
    if found is None:
        raise not_found("gateway", repr(name))
    version, rules = found
    # Read after the version: a rule changed in between leaves the gateway a version behind
    # its rules, so it fetches again (never the other way round).
    alert_rules = storage.gateway_alert_rules(name)
    data = {"gateway_id": name, "version": version, "sensors": rules, "alert_rules": alert_rules}
    # Which sensor each of its keys lands on (one key may name sensors in two factories).
    data.update(key_owner.gateway_sensors(storage, name) or {})
    return data, {"count": len(rules)}


def load_checker() -> ModuleType:
    try:
        return importlib.import_module("threshold_checker")
    except ImportError as exc:
        raise ApiError(
            503,
            "threshold_checker_unavailable",
            f"the native module threshold_checker is not installed in this hub ({exc}); "
            "build it with `maturin develop` (just build)",
        ) from None


def sensor_alerts(storage: Storage, raw_id: str | None, params: Mapping[str, str]) -> Result:
    """A fresh threshold check of the last ``limit`` readings (time order)."""
    sensor = sensor_row(storage, raw_id)
    limit = parse_limit(params, default=DEFAULT_ALERT_LIMIT, maximum=MAX_ALERT_LIMIT)
    checker = load_checker()
    rows = storage.last_readings(sensor["id"], limit)
    lo, hi = sensor["min_threshold"], sensor["max_threshold"]
    ts_of = {rid: ts for rid, ts, _ in rows}
    found = checker.check_thresholds([(rid, value) for rid, _, value in rows], lo, hi)
    alerts: list[dict[str, Any]] = [
        {
            "reading_id": a.reading_id,
            "value": a.value,
            "breach_type": a.breach_type,
            "threshold_value": a.threshold_value,
            "severity": a.severity,
            "ts": ts_of[a.reading_id],
        }
        for a in found
    ]
    data = {
        "sensor_id": sensor["id"],
        "sensor_name": sensor["name"],
        "thresholds": {"min": lo, "max": hi},
        "checked_readings": len(rows),
        "alerts_found": len(alerts),
        "alerts": alerts,
        # What the gateways decided on their own (also while the hub was unreachable),
        # with open/close times.
        "edge_alerts": [
            {
                **a,
                "opened": to_rfc3339(a["opened_at"]),
                "closed": None if a["closed_at"] is None else to_rfc3339(a["closed_at"]),
            }
            for a in storage.edge_alerts(sensor["id"], limit)
        ],
    }
    return data, {"source": "threshold_checker"}

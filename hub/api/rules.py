"""Alert rules as the seeds' AlertRule, per sensor: ``GET``/``POST /sensors/:id/rules``,
``PATCH``/``DELETE /rules/:id``.

A rule is ``{condition, threshold, threshold_high, severity, enabled, deadband, delay_s}``:

* ``GREATER_THAN``: fires above ``threshold``; ``LESS_THAN``: below it; ``OUT_OF_RANGE``:
  outside ``[threshold, threshold_high]`` (``threshold < threshold_high``).
* ``deadband``: the alert clears only once the value is back past the threshold by this
  much (no chattering around it); ``delay_s``: the condition must hold this long before the
  alert opens (an on-delay: a one-reading spike does not page anyone).
* ``severity``: INFO | WARNING | CRITICAL. A sensor's rules make one alert at the edge whose
  severity follows the most severe rule firing, up and down, in place.

Rules are checked here (422 naming each bad field), stored, and flow down to the gateways
with the factory's config version; the Rust engine at the edge evaluates them offline.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import msgspec

from hub.api import spec as _spec  # noqa: F401  (describes these routes)
from hub.api.alarms import bad_json, field_of
from hub.api.http import API, Ctx, Route, Services, created, no_content
from hub.api.queries import parse_id
from hub.api.scope import by_id
from hub.auth import READ_ROLES, Role
from hub.errors import ApiError, not_found
from hub.ingest import body_bytes
from hub.storage import Storage
from hub.storage.audit import Who
from hub.storage.rules import RuleSpec
from shared.timeutil import to_rfc3339
from shared.values import value_problem

Condition = Literal["GREATER_THAN", "LESS_THAN", "OUT_OF_RANGE"]
Severity = Literal["INFO", "WARNING", "CRITICAL"]
MAX_DELAY_S = 86400.0
_UNSET: Any = msgspec.UNSET


class RuleBody(msgspec.Struct, forbid_unknown_fields=True):
    condition: Condition
    threshold: float
    threshold_high: float | None = None
    severity: Severity = "WARNING"
    enabled: bool = True
    deadband: float = 0.0
    delay_s: float = 0.0


class RulePatch(msgspec.Struct, forbid_unknown_fields=True):
    condition: Condition | msgspec.UnsetType = _UNSET
    threshold: float | msgspec.UnsetType = _UNSET
    threshold_high: float | msgspec.UnsetType | None = _UNSET
    severity: Severity | msgspec.UnsetType = _UNSET
    enabled: bool | msgspec.UnsetType = _UNSET
    deadband: float | msgspec.UnsetType = _UNSET
    delay_s: float | msgspec.UnsetType = _UNSET


def _invalid(details: list[dict[str, str]]) -> ApiError:
    fields = ", ".join(d["field"] for d in details)
    return ApiError(422, "validation_error", f"invalid rule ({fields})", details)


def _decode(body: bytes, kind: type[msgspec.Struct]) -> Any:
    if not body.strip():
        raise _invalid([{"field": "body", "message": "a JSON object is required"}])
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        malformed = bad_json(body)
        if malformed is not None:
            raise malformed from None
        raise _invalid([{"field": field_of(exc), "message": str(exc)}]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def check(spec: RuleSpec) -> RuleSpec:
    """422 naming every bad field of a (merged) rule."""
    details: list[dict[str, str]] = []
    for name in ("threshold", "threshold_high", "deadband", "delay_s"):
        value = getattr(spec, name)
        problem = None if value is None else value_problem(value)
        if problem is not None:
            details.append({"field": name, "message": problem})
    if details:
        raise _invalid(details)
    if spec.condition == "OUT_OF_RANGE":
        if spec.threshold_high is None:
            details.append({"field": "threshold_high", "message": "required for OUT_OF_RANGE"})
        elif not spec.threshold < spec.threshold_high:
            details.append({"field": "threshold_high", "message": "must be greater than threshold"})
        elif spec.threshold + spec.deadband > spec.threshold_high - spec.deadband:
            details.append(
                {
                    "field": "deadband",
                    "message": "leaves no clear band: need threshold + deadband <= "
                    "threshold_high - deadband",
                }
            )
    elif spec.threshold_high is not None:
        details.append(
            {
                "field": "threshold_high",
                "message": f"only OUT_OF_RANGE has one, not {spec.condition}",
            }
        )
    if spec.deadband < 0:
        details.append({"field": "deadband", "message": "must be >= 0"})
    if not 0 <= spec.delay_s <= MAX_DELAY_S:
        details.append(
            {"field": "delay_s", "message": f"must be from 0 to {MAX_DELAY_S:g} seconds"}
        )
    if details:
        raise _invalid(details)
    return spec


def parse_rule(body: bytes) -> RuleSpec:
    b: RuleBody = _decode(body, RuleBody)
    return check(
        RuleSpec(
            b.condition, b.threshold, b.threshold_high, b.severity, b.enabled, b.deadband, b.delay_s
        )
    )


def merge_patch(stored: dict[str, Any], body: bytes) -> RuleSpec:
    patch: RulePatch = _decode(body, RulePatch)
    fields = {f.name: stored[f.name] for f in dataclasses.fields(RuleSpec)}
    for name in fields:
        value = getattr(patch, name)
        if value is not msgspec.UNSET:
            fields[name] = value
    # Changing the condition away from OUT_OF_RANGE drops the upper threshold with it.
    if (
        patch.condition is not msgspec.UNSET
        and patch.threshold_high is msgspec.UNSET
        and fields["condition"] != "OUT_OF_RANGE"
    ):
        fields["threshold_high"] = None
    fields["enabled"] = bool(fields["enabled"])
    for name in ("threshold", "deadband", "delay_s"):
        fields[name] = float(fields[name])
    if fields["threshold_high"] is not None:
        fields["threshold_high"] = float(fields["threshold_high"])
    return check(RuleSpec(**fields))


def rule_view(row: dict[str, Any]) -> dict[str, Any]:
    high = row["threshold_high"]
    return {
        "id": row["id"],
        "sensor_id": row["sensor_id"],
        "condition": row["condition"],
        "threshold": float(row["threshold"]),
        "threshold_high": None if high is None else float(high),
        "severity": row["severity"],
        "enabled": bool(row["enabled"]),
        "deadband": float(row["deadband"]),
        "delay_s": float(row["delay_s"]),
        "created_at": to_rfc3339(row["created_at"]),
        "updated_at": to_rfc3339(row["updated_at"]),
    }


def _sensor_id(storage: Storage, raw: str | None) -> int:
    sensor_id = parse_id("id", raw)
    if storage.get_sensor(sensor_id) is None:
        raise not_found("sensor", sensor_id)
    return sensor_id


def list_rules(storage: Storage, raw_id: str | None) -> tuple[Any, dict[str, Any]]:
    sensor_id = _sensor_id(storage, raw_id)
    rows = [rule_view(r) for r in storage.list_rules(sensor_id)]
    return rows, {"sensor_id": sensor_id, "count": len(rows)}


def add_rule(
    storage: Storage, raw_id: str | None, body: bytes, who: Who | None = None
) -> tuple[Any, dict[str, Any]]:
    sensor_id = parse_id("id", raw_id)
    spec = parse_rule(body)
    done = storage.add_rule(sensor_id, spec, actor=who)
    if done is None:
        raise not_found("sensor", sensor_id)
    rule, version = done
    return rule_view(rule), {"config_version": version}


def update_rule(
    storage: Storage, raw_id: str | None, body: bytes, who: Who | None = None
) -> tuple[Any, dict[str, Any]]:
    rule_id = parse_id("id", raw_id)
    stored = storage.get_rule(rule_id)
    if stored is None:
        raise not_found("rule", rule_id)
    done = storage.update_rule(rule_id, merge_patch(stored, body), actor=who)
    if done is None:  # deleted meanwhile
        raise not_found("rule", rule_id)
    rule, version = done
    return rule_view(rule), {"config_version": version}


def delete_rule(storage: Storage, raw_id: str | None, who: Who | None = None) -> int:
    rule_id = parse_id("id", raw_id)
    version = storage.delete_rule(rule_id, actor=who)
    if version is None:
        raise not_found("rule", rule_id)
    return version


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_rules(ctx: Ctx) -> Any:
        """A sensor's alert rules."""
        return list_rules(storage, ctx.path("id"))

    def h_add_rule(ctx: Ctx) -> Any:
        """Add an alert rule to a sensor (201); it flows down to the gateways."""
        data, meta = add_rule(storage, ctx.path("id"), body_bytes(ctx.request.body), ctx.principal)
        return created(ctx, data, meta)

    def h_update_rule(ctx: Ctx) -> Any:
        """Change some fields of an alert rule."""
        return update_rule(storage, ctx.path("id"), body_bytes(ctx.request.body), ctx.principal)

    def h_delete_rule(ctx: Ctx) -> Any:
        """Delete an alert rule (204)."""
        delete_rule(storage, ctx.path("id"), ctx.principal)
        return no_content()

    admin: tuple[Role, ...] = ("admin",)
    sensor, rule = by_id("sensor"), by_id("rule")
    return [
        Route("GET", f"{API}/sensors/:id/rules", READ_ROLES, h_rules, scope=sensor),
        Route("POST", f"{API}/sensors/:id/rules", admin, h_add_rule, scope=sensor),
        Route("PATCH", f"{API}/rules/:id", admin, h_update_rule, scope=rule),
        Route("DELETE", f"{API}/rules/:id", admin, h_delete_rule, scope=rule),
    ]

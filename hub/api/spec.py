"""OpenAPI descriptions of the alert-rule and alert routes, added to hub.api.openapi.OPS when the
route modules are imported (hub.app.Hub.routes), so every route is described."""

from __future__ import annotations

from typing import Any

from hub.api.openapi import _INT_ID, _SCHEMAS, API, BY, OPS, Op, _envelope, _param, _ref

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NUM = {"type": ["number", "null"]}
_BY = BY
_OOS_RECORD: dict[str, Any] = {"since": _TIME, "by": _BY, "comment": {"type": ["string", "null"]}}
_RULE_FIELDS: dict[str, Any] = {
    "condition": {"enum": ["GREATER_THAN", "LESS_THAN", "OUT_OF_RANGE"]},
    "threshold": {"type": "number"},
    "threshold_high": {"type": ["number", "null"], "description": "OUT_OF_RANGE only"},
    "severity": {"enum": ["INFO", "WARNING", "CRITICAL"]},
    "enabled": {"type": "boolean"},
    "deadband": {"type": "number", "minimum": 0},
    "delay_s": {"type": "number", "minimum": 0, "maximum": 86400},
}

_SCHEMAS.update(
    {
        "AlertRule": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "sensor_id": {"type": "integer"},
                **_RULE_FIELDS,
                "created_at": _TIME,
                "updated_at": _TIME,
            },
            "required": ["id", "sensor_id", "condition", "threshold", "severity", "enabled"],
        },
        "AlertRuleBody": {
            "type": "object",
            "properties": _RULE_FIELDS,
            "required": ["condition", "threshold"],
            "description": "OUT_OF_RANGE needs threshold < threshold_high; the others take no "
            "threshold_high. Numbers must be finite.",
        },
        "AlertRulePatch": {
            "type": "object",
            "properties": _RULE_FIELDS,
            "description": "Any subset of the rule's fields; the result is checked as a whole.",
        },
        "Alert": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"enum": ["threshold", "rule", "rate_of_change", "gateway_offline"]},
                "sensor_id": {"type": ["integer", "null"]},
                "gateway_id": {"type": "string"},
                "factory_id": {"type": "integer"},
                "rule_id": {"type": ["integer", "null"]},
                "severity": {
                    "enum": ["info", "warning", "critical"],
                    "description": "one scale for every kind: the most severe of the sensor's "
                    "edge alerts active together (one alarm per sensor)",
                },
                "state": {"enum": ["active", "cleared"]},
                "acknowledged": {"type": "boolean"},
                "acknowledged_at": _TIME,
                "acknowledged_by": _BY,
                "shelved": {"type": "boolean"},
                "shelved_until": _TIME,
                "out_of_service": {
                    "type": "boolean",
                    "description": "its sensor (or the sensor's machine) is out of service: "
                    "suppressed, no webhooks",
                },
                "out_of_service_since": _TIME,
                "out_of_service_by": _BY,
                "out_of_service_comment": {"type": ["string", "null"]},
                "out_of_service_machine_status": {
                    "type": ["string", "null"],
                    "description": "MAINTENANCE or OFFLINE when the machine's status holds it",
                },
                "opened_at": _TIME,
                "cleared_at": _TIME,
                "value": _NUM,
                "peak_value": {
                    "type": ["number", "null"],
                    "description": "the most extreme value while active: the highest above a "
                    "maximum, the lowest below a minimum; null for a gateway's alert",
                },
                "threshold_value": _NUM,
                "journal": {
                    "type": "array",
                    "items": _ref("JournalEntry"),
                    "description": "GET /alerts/{id} only: the newest 100 transitions, oldest "
                    "first; all of them are paged at /alerts/{id}/journal",
                },
                "journal_total": {
                    "type": "integer",
                    "description": "GET /alerts/{id} only: how many transitions in all",
                },
            },
            "required": ["id", "kind", "severity", "state", "acknowledged"],
        },
        "ServiceState": {
            "type": "object",
            "description": "A sensor's out-of-service state: its own record and its machine's "
            "(status MAINTENANCE or OFFLINE); out_of_service when either holds it.",
            "properties": {
                "sensor_id": {"type": "integer"},
                "out_of_service": {"type": "boolean"},
                "sensor": {"type": ["object", "null"], "properties": _OOS_RECORD},
                "machine": {
                    "type": ["object", "null"],
                    "properties": {**_OOS_RECORD, "status": {"enum": ["MAINTENANCE", "OFFLINE"]}},
                },
            },
        },
        "JournalEntry": {
            "type": "object",
            "properties": {
                "at": _TIME,
                "by": _BY,
                "action": {"type": "string"},
                "severity": {"type": ["string", "null"]},
                "comment": {"type": ["string", "null"]},
            },
        },
    }
)

_ALERT = _param("id", "path", _INT_ID, "the alert's id", 1)
_RULE = _param("id", "path", _INT_ID, "the rule's id", 1)
_SENSOR = _param("id", "path", _INT_ID, "the sensor's numeric id", 1)
_PAGE = (
    _param("page", "query", {"type": "integer", "minimum": 1}, "page number, from 1"),
    _param("per_page", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
)
_WRITE_ERRORS = (400, 401, 403, 404, 413, 422, 429)
_CHANGE_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429)


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


def _inline_body(required: bool, **props: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": props}
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_COMMENT = {"type": ["string", "null"], "maxLength": 2000}

ALARM_OPS: dict[tuple[str, str], Op] = {
    ("GET", f"{API}/sensors/:id/rules"): Op(
        {"type": "array", "items": _ref("AlertRule")}, (_SENSOR,), (400, 401, 403, 404, 429)
    ),
    ("POST", f"{API}/sensors/:id/rules"): Op(
        _ref("AlertRule"), (_SENSOR,), _WRITE_ERRORS, _body("AlertRuleBody"), status=201
    ),
    ("PATCH", f"{API}/rules/:id"): Op(
        _ref("AlertRule"), (_RULE,), _WRITE_ERRORS, _body("AlertRulePatch")
    ),
    ("DELETE", f"{API}/rules/:id"): Op({}, (_RULE,), (400, 401, 403, 404, 429), status=204),
    ("GET", f"{API}/alerts"): Op(
        {"type": "array", "items": _ref("Alert")},
        (
            _param("state", "query", {"enum": ["active", "cleared"]}, "active or cleared"),
            _param("acknowledged", "query", {"type": "boolean"}, "acknowledged or not"),
            _param(
                "severity",
                "query",
                {"enum": ["info", "medium", "warning", "high", "critical"]},
                "severity on the one scale, info < warning < critical (case-insensitive; the "
                "edge's threshold grades medium and high mean warning)",
            ),
            _param(
                "kind",
                "query",
                {"enum": ["threshold", "rule", "rate_of_change", "gateway_offline"]},
                "what raised it",
            ),
            _param("factory_id", "query", _INT_ID, "only this factory's"),
            _param("gateway_id", "query", {"type": "string"}, "only this gateway's (e.g. gw-01)"),
            _param("sensor_id", "query", _INT_ID, "only this sensor's"),
            _param("machine_id", "query", _INT_ID, "only the alerts of this machine's sensors"),
            _param("shelved", "query", {"type": "boolean"}, "shelved now (true) or not (false)"),
            *_PAGE,
        ),
        (400, 401, 403, 429),
    ),
    ("GET", f"{API}/alerts/:id"): Op(_ref("Alert"), (_ALERT,), (400, 401, 403, 404, 429)),
    ("GET", f"{API}/alerts/:id/journal"): Op(
        {"type": "array", "items": _ref("JournalEntry")},
        (_ALERT, *_PAGE),
        (400, 401, 403, 404, 429),
    ),
    ("POST", f"{API}/alerts/:id/ack"): Op(
        _ref("Alert"), (_ALERT,), _CHANGE_ERRORS, _inline_body(False, comment=_COMMENT)
    ),
    ("POST", f"{API}/alerts/:id/shelve"): Op(
        _ref("Alert"),
        (_ALERT,),
        _CHANGE_ERRORS,
        _inline_body(
            True,
            duration_s={"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
            comment=_COMMENT,
        ),
    ),
    ("POST", f"{API}/alerts/:id/unshelve"): Op(
        _ref("Alert"), (_ALERT,), _CHANGE_ERRORS, _inline_body(False, comment=_COMMENT)
    ),
    ("POST", f"{API}/sensors/:id/out-of-service"): Op(
        _ref("ServiceState"), (_SENSOR,), _CHANGE_ERRORS, _inline_body(False, comment=_COMMENT)
    ),
    ("POST", f"{API}/sensors/:id/in-service"): Op(
        _ref("ServiceState"), (_SENSOR,), _CHANGE_ERRORS, _inline_body(False, comment=_COMMENT)
    ),
}
OPS.update(ALARM_OPS)

# The alarm KPI report (hub.api.alarm_report; definitions in hub.api.alarm_kpis).
_SPAN = {
    "type": "object",
    "properties": {"alarms": {"type": "integer"}, "duration_s": {"type": "number"}},
}
_SHARE = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "share": {"type": "number"}},
}
_SCHEMAS["AlarmReport"] = {
    "type": "object",
    "properties": {
        "factory_id": {"type": ["integer", "null"]},
        "from": _TIME,
        "to": _TIME,
        "alarms": {"type": "integer", "description": "annunciated in [from, to)"},
        "per_day_avg": {"type": "number"},
        "per_10min_avg": {"type": "number"},
        "per_10min_peak": {
            "type": "integer",
            "description": "most alarms in one 10-minute period (aligned to from)",
        },
        "floods": {
            "type": "object",
            "description": "time when more than 10 alarms were annunciated in the last 10 minutes",
            "properties": {
                "count": {"type": "integer"},
                "total_s": {"type": "number"},
                "longest_s": {"type": "number"},
                "time_share": {"type": "number"},
            },
        },
        "top_sources": {
            "type": "array",
            "maxItems": 10,
            "items": {
                "type": "object",
                "properties": {
                    "sensor_id": {"type": ["integer", "null"]},
                    "key": {"type": ["string", "null"]},
                    "gateway_id": {
                        "type": ["string", "null"],
                        "description": "a gateway's own alarms (gateway_offline)",
                    },
                    "count": {"type": "integer"},
                    "share": {"type": "number"},
                },
            },
        },
        "chattering": {
            "type": "object",
            "properties": {
                "sources": {"type": "integer"},
                "alarms": {"type": "integer"},
                "duration_s": {"type": "number"},
            },
        },
        "stale": _SPAN,
        "shelved": _SPAN,
        "out_of_service": {
            "type": "object",
            "description": "out-of-service periods (a sensor's own, a machine's in "
            "MAINTENANCE or OFFLINE) reaching into the period, their time in it, and the "
            "alarms the hub held back because of them",
            "properties": {
                "periods": {"type": "integer"},
                "sensors": {"type": "integer"},
                "machines": {"type": "integer"},
                "duration_s": {"type": "number"},
                "alarms": {"type": "integer"},
            },
        },
        "severity_mix": {"type": "object", "additionalProperties": _SHARE},
        "ack_time_s": {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "median": _NUM,
                "p90": _NUM,
            },
        },
        "targets": {"type": "object", "description": "the ISA-18.2 / EEMUA 191 figures"},
        "rate": {
            "type": "object",
            "description": "alarms per bucket from `from` (JSON only): 10 minutes for a "
            "period up to 2 days, 1 hour up to 31 days, else 1 day",
            "properties": {
                "bucket_s": {"type": "number"},
                "counts": {"type": "array", "items": {"type": "integer"}},
            },
        },
    },
    "required": ["alarms", "per_day_avg", "per_10min_avg", "per_10min_peak", "floods"],
}
OPS[("GET", f"{API}/alarm-report")] = Op(
    {},
    (
        _param("from", "query", {"type": "string"}, "start (inclusive); default: a day before to"),
        _param("to", "query", {"type": "string"}, "end (exclusive); default: now"),
        _param("factory_id", "query", _INT_ID, "one factory (operator position); default: all"),
        _param("format", "query", {"enum": ["json", "csv"]}, "json (default) or csv"),
    ),
    (400, 401, 403, 404, 422, 429),
    # ?format=csv answers one metric,value row per figure.
    raw={"application/json": _envelope(_ref("AlarmReport")), "text/csv": {"type": "string"}},
)

# The alarm roll-up (hub.api.alarm_summary).
_SCHEMAS["AlarmState"] = {
    "type": "object",
    "description": "shelved alarms count only as shelved, and the alarms of a sensor out of "
    "service (its own or its machine's) only as out_of_service, not as active or "
    "unacknowledged",
    "properties": {
        "worst_severity": {
            "type": ["string", "null"],
            "description": "the highest severity among the active alarms; null when none",
        },
        "active": {"type": "integer", "description": "active, not shelved, in service"},
        "unacknowledged": {
            "type": "integer",
            "description": "not acknowledged (active or cleared), not shelved, in service",
        },
        "shelved": {"type": "integer", "description": "active and shelved, in service"},
        "out_of_service": {
            "type": "integer",
            "description": "active, of a sensor out of service (shelved or not)",
        },
        "in_alarm": {"type": "boolean", "description": "active > 0"},
    },
    "required": [
        "worst_severity",
        "active",
        "unacknowledged",
        "shelved",
        "out_of_service",
        "in_alarm",
    ],
}
_STATE = _ref("AlarmState")
_SCHEMAS["AlarmSummary"] = {
    "type": "object",
    "properties": {
        "at": _TIME,
        "factory_id": {"type": ["integer", "null"]},
        "machine_id": {"type": ["integer", "null"]},
        "alarms": _STATE,
        "factories": {
            "type": "array",
            "description": "the fleet's answer: every factory",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "location": {"type": ["string", "null"]},
                    "alarms": _STATE,
                },
            },
        },
        "machines": {
            "type": "array",
            "description": "a factory's answer: every machine of it; the fleet's: the "
            "machines with active or unacknowledged alarms",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "factory_id": {"type": "integer"},
                    "factory": {"type": "string"},
                    "line": {"type": "string"},
                    "name": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                    "status": {"type": ["string", "null"]},
                    "alarms": _STATE,
                },
            },
        },
        "sensors": {
            "type": "array",
            "description": "a machine's answer: every sensor of it with its latest reading",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "key": {"type": "string"},
                    "name": {"type": "string"},
                    "unit": {"type": ["string", "null"]},
                    "thresholds": {"type": "object"},
                    "stale": {"type": "boolean"},
                    "value": _NUM,
                    "time": _TIME,
                    "alarms": _STATE,
                },
            },
        },
    },
    "required": ["alarms", "factories", "machines", "sensors"],
}
OPS[("GET", f"{API}/alarm-summary")] = Op(
    _ref("AlarmSummary"),
    (
        _param("factory_id", "query", _INT_ID, "one factory: its machines"),
        _param("machine_id", "query", _INT_ID, "one machine: its sensors"),
    ),
    (400, 401, 403, 404, 429),
)

"""OpenAPI descriptions of the model's CRUD, the paged lists, bulk back-fill, rolling/CSV
readings, the factory report, the change log and the startup probe; added to
hub.api.openapi.OPS when the route modules are imported (hub.app.Hub.routes).

The list routes that hub.api.openapi describes already gain their ``page``/``per_page``
parameters here (their entries are amended in place, not replaced), as does the readings
route its ``rolling`` and ``format``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.api.openapi import (
    _FROM,
    _INT_ID,
    _SCHEMAS,
    _SENSOR,
    _TO,
    API,
    BY,
    OPS,
    Op,
    _array,
    _envelope,
    _param,
    _ref,
)
from shared.sensor_key import MAX_SEGMENT_LEN

_TIME = {"type": ["string", "null"], "format": "date-time"}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_SEGMENT_LEN}
_TEXT_OR_NULL = {"type": ["string", "null"], "maxLength": 256}
_STATUS = {"enum": ["OPERATIONAL", "MAINTENANCE", "OFFLINE"]}
_NUM_OR_NULL = {"type": ["number", "null"]}

PAGE_PARAMS = (
    _param("page", "query", {"type": "integer", "minimum": 1}, "page number, from 1"),
    _param("per_page", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
)
_FORMAT = _param("format", "query", {"enum": ["json", "csv"]}, "json (default) or csv")
_CSV = {"text/csv": {"type": "string"}}

_SCHEMAS.update(
    {
        "Links": {
            "type": "object",
            "properties": {
                "self": {"type": "string"},
                "next": {"type": ["string", "null"]},
                "last": {"type": "string"},
            },
            "required": ["self", "next", "last"],
        },
        "Factory": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "location": {"type": ["string", "null"]},
                "machines": {"type": "integer"},
                "gateways": {"type": "integer"},
                "created_at": _TIME,
            },
            "required": ["id", "name"],
        },
        "FactoryBody": {
            "type": "object",
            "properties": {"name": _NAME, "location": _TEXT_OR_NULL},
            "required": ["name"],
            "additionalProperties": False,
        },
        "FactoryPatch": {
            "type": "object",
            "properties": {"name": _NAME, "location": _TEXT_OR_NULL},
            "additionalProperties": False,
            "description": "At least one field.",
        },
        "Machine": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "factory_id": {"type": "integer"},
                "line": {"type": "string"},
                "name": {"type": "string"},
                "type": {"type": ["string", "null"]},
                "status": _STATUS,
                "sensors": {"type": "integer"},
                "created_at": _TIME,
            },
            "required": ["id", "factory_id", "line", "name", "status"],
        },
        "MachineBody": {
            "type": "object",
            "properties": {
                "factory_id": _INT_ID,
                "line": _NAME,
                "name": _NAME,
                "type": {"type": ["string", "null"], "maxLength": 64},
                "status": _STATUS,
            },
            "required": ["factory_id", "line", "name"],
            "additionalProperties": False,
        },
        "MachinePatch": {
            "type": "object",
            "properties": {
                "line": _NAME,
                "name": _NAME,
                "type": {"type": ["string", "null"], "maxLength": 64},
                "status": _STATUS,
            },
            "additionalProperties": False,
            "description": "At least one field; line and name only while it has no sensors.",
        },
        "SensorBody": {
            "type": "object",
            "properties": {
                "machine_id": _INT_ID,
                "name": _NAME,
                "unit": {"type": ["string", "null"], "maxLength": 32},
                "min_threshold": _NUM_OR_NULL,
                "max_threshold": _NUM_OR_NULL,
            },
            "required": ["machine_id", "name"],
            "additionalProperties": False,
        },
        "SensorPatch": {
            "type": "object",
            "properties": {"name": _NAME, "unit": {"type": ["string", "null"], "maxLength": 32}},
            "additionalProperties": False,
            "description": "At least one field; the sensor's key does not change.",
        },
        "BulkReading": {
            "type": "object",
            "properties": {
                "sensor_id": _INT_ID,
                "value": {"type": "number"},
                "timestamp": {
                    "anyOf": [
                        {"type": "number", "minimum": 0},
                        {"type": "string", "format": "date-time"},
                    ]
                },
            },
            "required": ["sensor_id", "value", "timestamp"],
            "additionalProperties": False,
        },
        "BulkResult": {
            "type": "object",
            "properties": {
                "inserted": {"type": "integer", "minimum": 0},
                "duplicates": {"type": "integer", "minimum": 0},
                "duration_ms": {"type": "number", "minimum": 0},
            },
            "required": ["inserted", "duplicates", "duration_ms"],
        },
        "RollingReading": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "ts": {"type": "number"},
                "time": {"type": "string", "format": "date-time"},
                "value": {"type": "number"},
                "rolling_avg": {"type": "number"},
            },
            "required": ["id", "ts", "value"],
        },
        "ReportRow": {
            "type": "object",
            "properties": {
                "sensor_id": {"type": "integer"},
                "key": {"type": "string"},
                "count": {"type": "integer"},
                "min": _NUM_OR_NULL,
                "max": _NUM_OR_NULL,
                "avg": _NUM_OR_NULL,
                "alerts": {"type": "integer"},
                "time_in_alert_s": {"type": "number", "minimum": 0},
            },
            "required": ["sensor_id", "key", "count", "alerts", "time_in_alert_s"],
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "by": BY,
                "action": {"type": "string"},
                "target": {"type": "string"},
                "target_id": {"type": ["string", "null"]},
                "detail": {"type": ["object", "null"]},
            },
            "required": ["id", "at", "by", "action", "target"],
        },
    }
)


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _paged(item: str) -> dict[str, Any]:
    """A page of a list: the envelope with ``links`` beside data and meta."""
    schema = _envelope(_array(item))
    schema["properties"]["links"] = _ref("Links")
    schema["required"] = [*schema["required"], "links"]
    return schema


_FACTORY = _param("id", "path", _INT_ID, "the factory's id", 1)
_MACHINE = _param("id", "path", _INT_ID, "the machine's id", 1)
_READ = (400, 401, 403, 404, 429)
_WRITE = (400, 401, 403, 404, 413, 422, 429)
_CHANGE = (400, 401, 403, 404, 409, 413, 422, 429)
_DELETE = (400, 401, 403, 404, 409, 429)

CRUD_OPS: dict[tuple[str, str], Op] = {
    ("GET", f"{API}/factories/:id"): Op(_ref("Factory"), (_FACTORY,), _READ),
    ("POST", f"{API}/factories"): Op(
        _ref("Factory"), (), (400, 401, 403, 409, 413, 422, 429), _body("FactoryBody"), status=201
    ),
    ("PATCH", f"{API}/factories/:id"): Op(
        _ref("Factory"), (_FACTORY,), _CHANGE, _body("FactoryPatch")
    ),
    ("DELETE", f"{API}/factories/:id"): Op({}, (_FACTORY,), _DELETE, status=204),
    ("GET", f"{API}/machines/:id"): Op(_ref("Machine"), (_MACHINE,), _READ),
    ("POST", f"{API}/machines"): Op(
        _ref("Machine"),
        (),
        (400, 401, 403, 409, 413, 422, 429),
        _body("MachineBody"),
        status=201,
    ),
    ("PATCH", f"{API}/machines/:id"): Op(
        _ref("Machine"), (_MACHINE,), _CHANGE, _body("MachinePatch")
    ),
    ("DELETE", f"{API}/machines/:id"): Op({}, (_MACHINE,), _DELETE, status=204),
    ("POST", f"{API}/sensors"): Op(
        _ref("Named"),
        (),
        (400, 401, 403, 409, 413, 422, 429),
        _body("SensorBody"),
        status=201,
    ),
    ("PATCH", f"{API}/sensors/:id"): Op(_ref("Named"), (_SENSOR,), _WRITE, _body("SensorPatch")),
    ("DELETE", f"{API}/sensors/:id"): Op({}, (_SENSOR,), (400, 401, 403, 404, 429), status=204),
    ("POST", f"{API}/readings/bulk"): Op(
        _ref("BulkResult"),
        (),
        (400, 401, 403, 413, 422, 429),
        {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": _ref("BulkReading"), "minItems": 1}
                }
            },
        },
        status=201,
    ),
    ("GET", f"{API}/factories/:id/report"): Op(
        {},
        (_FACTORY, _FROM, _TO, _FORMAT, *PAGE_PARAMS),
        _READ,
        raw={"application/json": _paged("ReportRow"), **_CSV},
    ),
    ("GET", f"{API}/audit"): Op(
        {},
        (
            _param("target", "query", {"type": "string", "maxLength": 128}, "factory, sensor..."),
            _param("target_id", "query", {"type": "string", "maxLength": 128}, "its id"),
            _param("token_id", "query", _INT_ID, "changes made with this token"),
            _FROM,
            _TO,
            *PAGE_PARAMS,
        ),
        (400, 401, 403, 429),
        raw={"application/json": _paged("AuditEntry")},
    ),
    ("GET", "/health/startup"): Op({}, errors=(503,), raw={"application/json": _ref("Probe")}),
}
OPS.update(CRUD_OPS)

# The lists hub.api.openapi describes answer pages now.
_LISTS = {
    f"{API}/gateways": "Named",
    f"{API}/factories": "Factory",
    f"{API}/machines": "Machine",
    f"{API}/sensors": "Named",
}
for _path, _item in _LISTS.items():
    _op = OPS[("GET", _path)]
    if not any(p["name"] == "page" for p in _op.params):
        OPS[("GET", _path)] = dataclasses.replace(
            _op,
            params=(*_op.params, *PAGE_PARAMS),
            errors=tuple(sorted({*_op.errors, 400})),
            raw={"application/json": _paged(_item)},
        )

# Readings: ?rolling=N adds rolling_avg to each; ?format=csv answers text/csv.
_readings = OPS[("GET", f"{API}/sensors/:id/readings")]
if not any(p["name"] == "rolling" for p in _readings.params):
    OPS[("GET", f"{API}/sensors/:id/readings")] = dataclasses.replace(
        _readings,
        params=(
            *_readings.params,
            _param(
                "rolling",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 10_000},
                "add rolling_avg: the average of the last N readings up to each",
            ),
            _FORMAT,
        ),
        raw={"application/json": _envelope(_array("RollingReading")), **_CSV},
    )

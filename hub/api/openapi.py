"""The OpenAPI 3.1 document behind ``/openapi.json`` (the Swagger UI page at ``/docs`` that
renders it is hub.api.docs).

Built from the app's own route table, so a route cannot exist without being described (the
build fails on an undescribed one). Robyn's generated spec is switched off: it knows neither
our envelope, nor our parameters, nor which statuses each route answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hub.batchcheck import MAX_INT64, MAX_TS
from shared import __version__
from shared.sensor_key import MAX_SEGMENT_LEN
from shared.wire import MAX_SEQ, Batch

API = "/api/v1"
_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


_NUM_OR_NULL = {"type": ["number", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}

_SCHEMAS: dict[str, Any] = {
    "Meta": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
        "required": ["request_id", "timestamp"],
        "additionalProperties": True,
    },
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["code", "message", "details"],
            },
            "meta": _ref("Meta"),
        },
        "required": ["error", "meta"],
    },
    "IngestResult": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "config_version": {"type": "integer", "minimum": 0},
        },
        "required": ["accepted", "duplicates", "config_version"],
    },
    "Thresholds": {
        "type": "object",
        "properties": {
            "min": _NUM_OR_NULL,
            "max": _NUM_OR_NULL,
            "deadband": _NUM_OR_NULL,
        },
        "description": "Omitted or null bounds are unset; min must not exceed max.",
    },
    "Reading": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "ts": {"type": "number"},
            "time": {"type": "string", "format": "date-time"},
            "value": {"type": "number"},
        },
        "required": ["id", "ts", "value"],
    },
    "Bucket": {
        "type": "object",
        "properties": {
            "ts": {"type": "number", "description": "bucket start, epoch seconds"},
            "time": {"type": "string", "format": "date-time"},
            "min": {"type": "number"},
            "max": {"type": "number"},
            "avg": {"type": "number"},
            "count": {"type": "integer"},
            "first": {"type": "number", "description": "the bucket's first reading"},
            "last": {"type": "number", "description": "the bucket's last reading"},
        },
    },
    "Stats": {
        "type": "object",
        "properties": {
            "min": _NUM_OR_NULL,
            "max": _NUM_OR_NULL,
            "avg": _NUM_OR_NULL,
            "count": {"type": "integer", "minimum": 0},
        },
        "required": ["count"],
    },
    "Named": {
        "type": "object",
        "description": "A gateway, factory, machine or sensor as the hub stores it.",
        "properties": {"id": {"type": ["integer", "string"]}, "created_at": _TIME},
    },
    "Probe": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    },
}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"data": data, "meta": _ref("Meta")},
        "required": ["data", "meta"],
    }


def _array(item: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(item)}


_ANY_DATA: dict[str, Any] = {}
_OBJECT: dict[str, Any] = {"type": "object"}


def _object(*required: str, **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


_ARRAY = {"type": "array", "items": _OBJECT}

# Who acted, in journal entries, audit rows, acknowledged_by and webhook events.
BY: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "kind": {"enum": ["user", "token", "gateway", "system"]},
        "name": {"type": ["string", "null"], "description": "user, token label or gateway"},
        "display": {"type": ["string", "null"], "description": "a person's full name"},
        "role": {"type": "string"},
        "token_id": {"type": ["integer", "null"], "description": "null for a person"},
    },
    "required": ["kind", "name", "display", "role", "token_id"],
}

_ERRORS = {
    400: "bad parameter or malformed body",
    401: "no or invalid bearer token",
    403: "the token's role may not do this, or the data is another gateway's",
    404: "no such resource",
    409: "conflict with the stored state",
    413: "body larger than the hub's limit",
    415: "unsupported Content-Encoding",
    422: "well-formed body with invalid content; nothing stored",
    429: "per-token rate limit; see Retry-After",
    503: "a dependency (database, anomaly-detector) is unavailable",
}


def _param(
    name: str, where: str, schema: dict[str, Any], text: str, example: object = None
) -> dict[str, Any]:
    param = {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": text,
    }
    if example is not None:
        param["example"] = example
    return param


_INT_ID = {"type": "integer", "minimum": 1, "maximum": MAX_INT64}
# Epoch seconds or RFC 3339, from 1970 to the end of 9999 (the hub answers 400 outside).
_TIME_Q = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_TS)},
        {"type": "string", "format": "date-time"},
    ]
}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 100_000}
_FROM = _param("from", "query", _TIME_Q, "start, epoch seconds or RFC 3339 (inclusive)")
_TO = _param("to", "query", _TIME_Q, "end, epoch seconds or RFC 3339 (exclusive)")
_SENSOR = _param("id", "path", _INT_ID, "the sensor's numeric id", 1)
_GATEWAY = _param("id", "path", {"type": "string"}, "the gateway's id", "gw-01")


@dataclass(frozen=True)
class Op:
    """How one route is described: what it takes, what it answers, which errors it may give."""

    data: dict[str, Any]
    params: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404)
    body: dict[str, Any] | None = None
    raw: dict[str, Any] | None = field(default=None)  # a non-envelope 200 (probes, metrics)
    status: int = 200  # the success status: 201 for a create, 204 (no body) for a delete


_READ_ERRORS = (400, 401, 403, 404, 429)

OPS: dict[tuple[str, str], Op] = {
    ("POST", f"{API}/ingest"): Op(
        _ref("IngestResult"),
        errors=(400, 401, 403, 413, 415, 422, 429, 503),
        body={
            "required": True,
            "description": "A sync batch (JSON; Content-Encoding: gzip allowed).",
            "content": {"application/json": {"schema": _ref("Batch")}},
        },
    ),
    ("GET", f"{API}/gateways"): Op(_array("Named"), errors=(401, 403, 429)),
    ("GET", f"{API}/gateways/:id"): Op(_ref("Named"), (_GATEWAY,), _READ_ERRORS),
    ("GET", f"{API}/gateways/:id/config"): Op(
        _object(
            "gateway_id",
            "version",
            "sensors",
            gateway_id={"type": "string"},
            version={"type": "integer"},
            sensors=_ARRAY,
        ),
        (_GATEWAY,),
        _READ_ERRORS,
    ),
    ("GET", f"{API}/factories"): Op(_array("Named"), errors=(401, 403, 429)),
    ("GET", f"{API}/machines"): Op(
        _array("Named"),
        (_param("factory_id", "query", _INT_ID, "only this factory's machines"),),
        (400, 401, 403, 429),
    ),
    ("GET", f"{API}/sensors"): Op(
        _array("Named"),
        (
            _param("machine_id", "query", _INT_ID, "only this machine's sensors"),
            _param("factory_id", "query", _INT_ID, "only this factory's sensors"),
            _param("key", "query", {"type": "string"}, "line/machine/sensor"),
        ),
        (400, 401, 403, 429),
    ),
    ("GET", f"{API}/sensors/:id"): Op(_ref("Named"), (_SENSOR,), _READ_ERRORS),
    ("GET", f"{API}/sensors/:id/readings"): Op(
        _array("Reading"),
        (_SENSOR, _FROM, _TO, _param("limit", "query", _LIMIT, "at most this many")),
        _READ_ERRORS,
    ),
    ("GET", f"{API}/sensors/:id/series"): Op(
        _array("Bucket"),
        (
            _SENSOR,
            _FROM,
            _TO,
            _param("bucket", "query", {"type": "string"}, "bucket width: 500ms, 10s, 5m, 1h, 1d"),
            _param(
                "points",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 100_000},
                "instead of bucket: the hub picks the bucket so at most this many come back",
            ),
            _param("limit", "query", _LIMIT, "at most this many buckets"),
        ),
        _READ_ERRORS,
    ),
    ("GET", f"{API}/sensors/:id/stats"): Op(_ref("Stats"), (_SENSOR, _FROM, _TO), _READ_ERRORS),
    ("GET", f"{API}/sensors/:id/latest"): Op(_ref("Reading"), (_SENSOR,), _READ_ERRORS),
    ("GET", f"{API}/sensors/:id/alerts"): Op(
        _object("alerts", "edge_alerts", alerts=_ARRAY, edge_alerts=_ARRAY),
        (_SENSOR, _param("limit", "query", _LIMIT, "check the last N readings")),
        _READ_ERRORS,
    ),
    ("GET", f"{API}/sensors/:id/anomalies"): Op(
        _OBJECT,
        (
            _SENSOR,
            _param("limit", "query", _LIMIT, "analyse the last N readings"),
            _param("threshold", "query", {"type": "number", "minimum": 0}, "z-score cut-off"),
            _param("method", "query", {"enum": ["zscore", "mad"]}, "detection rule"),
            _param("stored", "query", {"type": "boolean"}, "answer from the background scan"),
        ),
        (*_READ_ERRORS, 503),
    ),
    ("PUT", f"{API}/sensors/:id/thresholds"): Op(
        _ref("Named"),
        (_SENSOR,),
        (400, 401, 403, 404, 413, 422, 429),
        body={"required": True, "content": {"application/json": {"schema": _ref("Thresholds")}}},
    ),
    ("GET", "/health/live"): Op(_ANY_DATA, errors=(), raw={"application/json": _ref("Probe")}),
    ("GET", "/health/ready"): Op(_ANY_DATA, errors=(503,), raw={"application/json": _ref("Probe")}),
    ("GET", "/metrics"): Op(_ANY_DATA, errors=(), raw={"text/plain": {"type": "string"}}),
    ("GET", "/openapi.json"): Op(_ANY_DATA, errors=(), raw={"application/json": {}}),
    ("GET", "/docs"): Op(_ANY_DATA, errors=(), raw={"text/html": {"type": "string"}}),
}

_PATH_PARAM = re.compile(r":(\w+)")


def _operation(
    method: str, route: str, fn: Callable[..., Any], authenticated: bool, op: Op
) -> dict[str, Any]:
    doc = (fn.__doc__ or "").strip()
    summary, _, rest = doc.partition("\n")
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {ctype: {"schema": schema} for ctype, schema in (op.raw or {}).items()}
        or {"application/json": {"schema": _envelope(op.data)}},
    }
    if op.status == 204:
        ok = {"description": "No Content"}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in op.errors:
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if 429 in op.errors:
        responses["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
        }
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{fn.__name__.removeprefix('h_')}",
        "summary": summary.strip(),
        "tags": ["ops"] if not route.startswith(API) else [route.split("/")[3]],
        "parameters": list(op.params),
        "responses": responses,
    }
    if rest.strip():
        out["description"] = " ".join(rest.split())
    if op.body is not None:
        out["requestBody"] = op.body
    if not authenticated:
        out["security"] = []
    return out


def build(routes: Iterable[tuple[str, str, bool, Callable[..., Any]]]) -> dict[str, Any]:
    """The spec for ``(method, route, authenticated, handler)`` rows (Robyn's ``:id`` form)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, route, authenticated, fn in routes:
        op = OPS.get((method, route))
        if op is None:
            raise KeyError(f"route {method} {route} has no OpenAPI description in hub.api.openapi")
        path = _PATH_PARAM.sub(r"{\1}", route)
        paths.setdefault(path, {})[method.lower()] = _operation(
            method, route, fn, authenticated, op
        )
    _, batch_defs = msgspec.json.schema_components([Batch], ref_template=_REF)
    _bound_batch(batch_defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "factory-edge hub",
            "version": __version__,
            "description": "Responses are {data, meta}; errors are {error: {code, message, "
            "details}, meta}. Authenticate with Authorization: Bearer <token>.",
        },
        "paths": paths,
        "components": {
            "schemas": {**_SCHEMAS, **batch_defs},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _bound_batch(defs: dict[str, Any]) -> None:
    """The value ranges the hub enforces, which msgspec's schema of the wire types lacks:
    clients (and the schemathesis test) see where a 422 begins."""
    count = {"minimum": 0, "maximum": MAX_INT64}
    seq = {"minimum": 1, "maximum": MAX_SEQ - 1}
    when = {"minimum": 0, "maximum": int(MAX_TS)}
    key = {"minLength": 5, "maxLength": 3 * MAX_SEGMENT_LEN + 2}
    batch = defs["Batch"]["properties"]
    batch["gateway_id"].update(minLength=1, maxLength=128)
    for name in ("backlog", "dropped", "dead_letters"):
        batch[name].update(count)
    reading = defs["WireReading"]["prefixItems"]
    reading[0].update(seq)
    reading[1].update(key)
    reading[2].update(when)
    alert = defs["WireAlert"]["properties"]
    alert["id"].update(minimum=1, maximum=MAX_INT64)
    alert["key"].update(key)
    alert["opened_at"].update(when)
    alert["closed_at"]["anyOf"][0].update(when)
    alert["reading_seq"]["anyOf"][0].update(seq)

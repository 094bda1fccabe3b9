"""OpenAPI descriptions of people's accounts (hub.api.users), added to hub.api.openapi.OPS
when the route modules are imported (hub.app.Hub.routes)."""

from __future__ import annotations

from typing import Any

from hub.api.crud_spec import PAGE_PARAMS, _paged
from hub.api.openapi import _SCHEMAS, API, OPS, Op, _param, _ref
from hub.user_admin import ROLES
from hub.user_names import MAX_DISPLAY, MAX_NAME

_TIME = {"type": ["string", "null"], "format": "date-time"}
_ROLE = {"enum": list(ROLES)}
_FACTORIES = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 128},
    "maxItems": 1000,
    "description": "factory names the person is limited to; empty: every factory",
}
_DISPLAY = {"type": "string", "maxLength": MAX_DISPLAY, "description": 'e.g. "Anna Berg"'}

_SCHEMAS.update(
    {
        "User": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "display": {"type": "string"},
                "role": _ROLE,
                "factories": {"type": "array", "items": {"type": "string"}},
                "disabled": {"type": "boolean"},
                "locked": {"type": "boolean", "description": "by failed sign-ins, for now"},
                "has_password": {"type": "boolean"},
                "created_at": _TIME,
                "password_changed_at": _TIME,
                "setup_link": {
                    "type": "string",
                    "description": "on creation without a password only: shown this once",
                },
                "setup_link_expires_at": _TIME,
            },
            "required": ["name", "display", "role", "factories", "disabled", "locked"],
        },
        "UserBody": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME,
                    "description": "unique in any case (Anna and anna are one account)",
                },
                "role": _ROLE,
                "display": _DISPLAY,
                "factories": _FACTORIES,
                "password": {
                    "type": ["string", "null"],
                    "description": "omitted: the answer carries a one-time setup link",
                },
            },
            "required": ["name", "role"],
            "additionalProperties": False,
        },
        "UserPatch": {
            "type": "object",
            "properties": {
                "role": _ROLE,
                "display": _DISPLAY,
                "factories": _FACTORIES,
                "disabled": {"type": "boolean"},
            },
            "additionalProperties": False,
            "description": "At least one field.",
        },
    }
)


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


_NAME = _param("name", "path", {"type": "string"}, "the user name, in any case", "anna")

OPS.update(
    {
        ("GET", f"{API}/users"): Op(
            {}, PAGE_PARAMS, (400, 401, 403, 429), raw={"application/json": _paged("User")}
        ),
        ("POST", f"{API}/users"): Op(
            _ref("User"), (), (400, 401, 403, 409, 413, 422, 429), _body("UserBody"), status=201
        ),
        ("GET", f"{API}/users/:name"): Op(_ref("User"), (_NAME,), (400, 401, 403, 404, 429)),
        ("PATCH", f"{API}/users/:name"): Op(
            _ref("User"), (_NAME,), (400, 401, 403, 404, 413, 422, 429), _body("UserPatch")
        ),
    }
)

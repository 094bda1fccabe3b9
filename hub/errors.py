"""The response envelope: ``{"data", "meta"}`` on success, ``{"error", "meta"}`` otherwise.

Handlers raise :class:`ApiError`; the app turns it into a Response. Anything else that
escapes a handler becomes a 500 with code ``internal`` and no detail, so a stack trace
never reaches a client.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from shared.errors import ErrorBody, encode_error
from shared.timeutil import now, to_rfc3339

JSON_HEADERS = {"Content-Type": "application/json"}

_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """An error the client should see: HTTP status, stable code, message, per-field details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        # Extra response headers the status calls for (Retry-After on 429).
        self.headers = headers or {}


def bad_param(param: str, message: str, status: int = 400) -> ApiError:
    return ApiError(
        status,
        "invalid_parameter",
        f"invalid parameter {param!r}: {message}",
        [{"param": param, "message": message}],
    )


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} not found")


def unauthorized(message: str = "missing or invalid bearer token") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def rate_limited(retry_after_s: int, why: str = "too many requests for this token") -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"{why}; retry in {retry_after_s}s",
        headers={"Retry-After": str(retry_after_s)},
    )


# A failover takes seconds: the agent's next try after this finds the new primary.
DATABASE_RETRY_AFTER_S = 2


def database_unavailable(message: str, hosts: list[str]) -> ApiError:
    """503 for a request that found no writable database in time; what it wrote may or may
    not be committed (the agent's retry is idempotent)."""
    return ApiError(
        503,
        "database_unavailable",
        f"{message}; retry in {DATABASE_RETRY_AFTER_S}s",
        [{"host": host} for host in hosts],
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def method_not_allowed(method: str, path: str, allow: str) -> ApiError:
    return ApiError(
        405,
        "method_not_allowed",
        f"{method} is not served on {path}; allowed: {allow}",
        headers={"Allow": allow},
    )


def internal() -> ApiError:
    return ApiError(500, "internal", "internal server error; see the hub log")


def new_request_id() -> str:
    # An id to find a request by in the logs, not a secret: random's generator, which has no
    # system call in it (os.urandom's hands the interpreter lock to the other handler thread
    # and waits to get it back, on every request).
    return f"req_{random.getrandbits(64):016x}"


def make_meta(request_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"request_id": request_id, "timestamp": to_rfc3339(now())}
    if extra:
        meta.update(extra)
    return meta


def success_body(data: Any, request_id: str, meta: dict[str, Any] | None = None) -> bytes:
    return _encode({"data": data, "meta": make_meta(request_id, meta)})


def error_body(err: ApiError, request_id: str) -> bytes:
    return encode_error(ErrorBody(err.code, err.message, err.details), make_meta(request_id))

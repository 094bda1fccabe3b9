"""What a handler sees and what it answers: the hub's request types, in a leaf module.

Handlers import this, never the app: :class:`Ctx` is one request, :class:`Raw` an answer
other than the JSON envelope, :class:`Route` one entry of the route table that each
resource module hands to ``hub.app``, and :class:`Services` what those modules may use of
the running hub. The pipeline every route goes through (auth, limits, envelope, errors,
metrics) is ``hub.app``'s; nothing here runs a request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import unquote

from hub.auth import Principal, Role
from hub.errors import ApiError, bad_param, success_body
from hub.ingest import body_bytes
from hub.ratelimit import ReadCharge

if TYPE_CHECKING:
    from hub.anomaly import AnomalyClient
    from hub.api.scope import Scope
    from hub.batchcheck import SensorLimits
    from hub.config import HubSettings
    from hub.storage import Storage

API = "/api/v1"


@dataclass(frozen=True, slots=True)
class Raw:
    """A non-envelope answer (metrics text, probes, static files). ``stream``: the body is
    sent as these chunks come (chunked transfer), ``body`` is ignored."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None


@dataclass(slots=True)
class Ctx:
    request: Any
    request_id: str
    principal: Principal | None
    body: bytes = b""
    _params: dict[str, str] | None = field(default=None)
    # The read budget of this request's token (None: the route is not charged).
    reads: ReadCharge | None = None

    @property
    def scope(self) -> frozenset[int] | None:
        """The factories this request may see (None: every one): lists pass it to storage."""
        return None if self.principal is None else self.principal.factories

    def path(self, name: str) -> str | None:
        raw = self.request.path_params.get(name)
        return None if raw is None else _no_nul(name, unquote(raw))

    @property
    def params(self) -> dict[str, str]:
        # Robyn 0.88 hands query values over still percent-encoded.
        if self._params is None:
            raw = self.request.query_params.to_dict()
            self._params = {
                _no_nul(k, unquote(k)): _no_nul(unquote(k), unquote(v[0]))
                for k, v in raw.items()
                if v
            }
        return self._params


def _no_nul(name: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL: %00 in a filter would be a 500 there, and no name or
    # id of the hub contains one.
    if "\x00" in value:
        raise bad_param(name, "must not contain NUL (%00)")
    return value


# An envelope answer: (data, meta).
Result = tuple[Any, dict[str, Any]]
Handler = Callable[[Ctx], "Result | Raw"]
# Expected rows of a read, from its request: what the read budget charges up front.
RowEstimate = Callable[[Ctx], int]


class Route(NamedTuple):
    """One route: ``roles`` None is public; ``rows`` marks a read that can answer many rows
    (charged to the read budget, and run off Robyn's worker thread); ``slow`` marks other
    work that takes long (a password's argon2 check), run off that thread as well; ``scope``
    says how a principal limited to some factories meets it (hub.api.scope), and every route
    that authenticates must say it: the app refuses to build otherwise."""

    method: str
    path: str
    roles: tuple[Role, ...] | None
    handler: Handler
    rows: RowEstimate | None = None
    scope: Scope | None = None
    slow: bool = False


class Services(Protocol):
    """What a resource module may use of the running hub (``hub.app.Hub`` provides it)."""

    @property
    def settings(self) -> HubSettings: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def anomaly(self) -> AnomalyClient: ...

    @property
    def sensor_limits(self) -> SensorLimits: ...


def charged(estimate: Callable[[Mapping[str, str]], int]) -> RowEstimate:
    """A row estimate from the query parameters alone (hub.api.readcost's functions)."""

    def rows(ctx: Ctx) -> int:
        return estimate(ctx.params)

    return rows


def created(ctx: Ctx, data: Any, meta: dict[str, Any] | None = None) -> Raw:
    """201 with the created object in the envelope."""
    return Raw(201, success_body(data, ctx.request_id, meta))


def no_content() -> Raw:
    """204, no body."""
    return Raw(204, b"")


def complete_body(request: Any) -> bytes:
    """The request body, or 400 when it is not as long as its Content-Length says.

    Robyn hands a handler whatever arrived before the client half-closed: a batch cut off
    mid-way could still be valid JSON (a shorter array) and would be stored as if whole."""
    body = body_bytes(request.body)
    declared = request.headers.get("content-length")
    if declared is None:
        return body
    text = str(declared).strip()
    if not (text.isascii() and text.isdigit()) or int(text) != len(body):
        raise ApiError(
            400,
            "incomplete_body",
            f"the body has {len(body)} bytes, Content-Length says {text!r}; nothing done",
            [{"field": "body", "message": "shorter or longer than its Content-Length"}],
        )
    return body

"""The Robyn application: routes, auth per route, the envelope, metrics, error containment.

Every route goes through :meth:`Hub.endpoint`, which refuses a body shorter or longer than
its Content-Length, authenticates, applies the per-token rate limit (429 + Retry-After) and,
for reads that may answer many rows, the per-token read budget, runs the handler, turns
ApiError into its envelope and any other exception into a logged 500 ``internal``, and counts
and times the request by route template (not raw path, which would explode the label set).
The request id (the client's ``X-Request-ID``, else a new one) is on every log line of the
request and echoed back.

Methods: every GET route also answers HEAD (the same status and headers, no body); every
route answers OPTIONS with ``Allow``; any other method on a known path is a 405 envelope
with ``Allow``; an unknown path is a 404 envelope whatever the method.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter
from types import ModuleType
from typing import Any

import structlog

from hub import anomaly, metrics
from hub.api import (
    alarm_report,
    alarm_summary,
    alerts,
    anomalies,
    audit,
    catalog,
    crud,
    docs,
    health,
    readings,
    report,
    rules,
    service,
    users,
)
from hub.api import ingest as ingest_api
from hub.api.http import Ctx, Handler, Raw, Result, Route, complete_body
from hub.api.scope import FREE, Scope, admit
from hub.auth import GatewayTokenCache, Role, require
from hub.batchcheck import SensorLimits
from hub.config import HubSettings
from hub.errors import (
    JSON_HEADERS,
    ApiError,
    database_unavailable,
    error_body,
    internal,
    method_not_allowed,
    new_request_id,
    not_found,
    rate_limited,
    success_body,
)
from hub.ratelimit import PageRefused, RateLimiter, ReadBudget, ReadCharge, retry_after_s
from hub.storage import DatabaseUnavailable, Storage, noting_reads
from hub.web import views as console
from hub.web.apiauth import authenticate_request

log = structlog.get_logger("hub.app")

# The route label of unmatched requests in metrics (one label, not one per probed path).
NOT_FOUND_ROUTE = "<unmatched>"
# Methods the router knows; each path answers those it serves, 405 for the rest.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@contextmanager
def _argv_cleared() -> Iterator[None]:
    # robyn parses sys.argv when imported and whenever a Config is built (and would act on
    # our own -h/--version); it must only ever see the program name.
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def load_robyn() -> ModuleType:
    with _argv_cleared():
        import robyn
    return robyn


def _access_log(method: str, route: str, status: int, elapsed_s: float) -> None:
    # Successes at debug: a busy hub answers thousands of batches a minute. What an operator
    # must see (refusals, failures) is logged at info and above; a 503 is the designed answer
    # while a dependency is down, not a bug.
    if status >= 500:
        level = log.error if status == 500 else log.warning
    else:
        level = log.info if status >= 400 else log.debug
    level("request", method=method, route=route, status=status, ms=round(elapsed_s * 1e3, 2))


def _request_id(request: Any) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= 64 and given.isascii() and given.isprintable():
        return str(given)
    return new_request_id()


# Expected rows of a read, from its parameters: what the read budget charges up front.
RowEstimate = Callable[["Ctx"], int]


class Hub:
    """Holds what the handlers share and builds the Robyn app."""

    def __init__(self, settings: HubSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.anomaly = anomaly.AnomalyClient(settings.anomaly_url)
        # Rows of the database leased in chunks (hub.ratelimit): shared by every host.
        self.limiter = RateLimiter(
            settings.rate_limit_per_s, settings.rate_limit_burst, ledger=storage.quotas
        )
        # Spares each batch its token query; ingest re-checks revocation in its transaction.
        self.tokens = GatewayTokenCache(storage)
        self.read_budget = ReadBudget(
            settings.read_budget_rows_per_s,
            settings.read_budget_burst_rows,
            settings.max_concurrent_heavy_reads,
            settings.heavy_read_rows,
            ledger=storage.quotas,
        )
        self.sensor_limits = SensorLimits(
            settings.max_new_sensors_per_batch, settings.max_sensors_per_factory
        )
        # Cleared by `serve` while the database has no schema yet: requests get 503 till then.
        self.schema_ready = threading.Event()
        self.schema_ready.set()
        self._spec: bytes | None = None
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    @property
    def inflight(self) -> int:
        return self._inflight

    def _track(self, delta: int) -> None:
        with self._inflight_lock:
            self._inflight += delta

    def endpoint(
        self,
        robyn: ModuleType,
        method: str,
        route: str,
        roles: tuple[Role, ...] | None,
        fn: Handler,
        *,
        head: bool = False,
        rows: RowEstimate | None = None,
        scope: Scope = FREE,
        schema: bool = False,
    ) -> Callable[[Any], Any]:
        """Robyn's handler for ``fn``. ``head``: answer as GET would, without the body.
        ``rows``: the read's worst-case row count, for the read budget. ``scope``: what a
        principal limited to some factories may reach through it (hub.api.scope).
        ``schema``: it reads the database, so it waits for :attr:`schema_ready` (503)."""
        response_cls = robyn.Response
        storage = self.storage
        limiter = self.limiter
        tokens = self.tokens
        budget = self.read_budget
        label = "HEAD" if head else method

        def handler(request: Any) -> Any:
            self._track(1)
            started = perf_counter()
            rid = _request_id(request)
            headers: dict[str, str] = {}
            # Every line logged while this request runs carries its id. Bound and reset inside
            # this synchronous call, so requests on other threads never see it.
            with structlog.contextvars.bound_contextvars(request_id=rid):
                admitted = False
                stream: Iterable[bytes] | None = None
                try:
                    if schema and not self.schema_ready.is_set():
                        raise DatabaseUnavailable("the database has no schema yet", [])
                    raw_body = complete_body(request)
                    principal = None
                    if roles is not None:
                        found = authenticate_request(storage, request, method, tokens)
                        principal = require(found, roles)
                        wait = limiter.acquire(principal.quota_key)
                        if wait > 0:
                            metrics.RATE_LIMITED.inc()
                            raise rate_limited(retry_after_s(wait))
                    ctx = Ctx(request, rid, principal, raw_body)
                    if principal is not None and principal.factories is not None:
                        # The one place a factory scope is checked (before any read).
                        admit(scope, principal, ctx.path("id"), raw_body, storage)
                    if rows is not None and principal is not None:
                        ctx.reads = ReadCharge(budget, principal.quota_key)
                        expected = rows(ctx)  # bad parameters: their 400 comes from here
                        if budget.is_heavy(expected):
                            refused = budget.acquire(principal.quota_key, expected)
                            if refused is not None:
                                reason, wait = refused
                                metrics.READ_BUDGET_REFUSED.labels(reason).inc()
                                raise rate_limited(retry_after_s(wait), _BUDGET_HINT[reason])
                            admitted = True
                    with noting_reads() as note:
                        result = fn(ctx)
                    if isinstance(result, Raw):
                        status, body, ctype = result.status, result.body, result.content_type
                        headers.update(result.headers)
                        stream = result.stream
                        if note.lag_s is not None and stream is None:
                            headers["X-Lag-S"] = repr(note.lag_s)  # a CSV answer's meta
                    else:
                        data, meta = result
                        if note.lag_s is not None:  # read on the read database
                            meta = {**meta, "lag_s": note.lag_s}
                        status, body = 200, success_body(data, rid, meta)
                        ctype = "application/json"
                except PageRefused as refused:
                    metrics.READ_BUDGET_REFUSED.labels(refused.reason).inc()
                    err = rate_limited(retry_after_s(refused.wait_s), _BUDGET_HINT[refused.reason])
                    status, body, ctype = err.status, error_body(err, rid), "application/json"
                    headers.update(err.headers)
                except ApiError as err:
                    status, body, ctype = err.status, error_body(err, rid), "application/json"
                    headers.update(err.headers)
                except DatabaseUnavailable as lost:
                    gone = database_unavailable(str(lost), lost.hosts)
                    metrics.DATABASE_UNAVAILABLE.inc()
                    status, body, ctype = gone.status, error_body(gone, rid), "application/json"
                    headers.update(gone.headers)
                except RecursionError:
                    # Only a decoder recurses this deep: JSON nested past msgspec's limit.
                    deep = ApiError(
                        400, "invalid_json", "body is not valid JSON: nested too deeply"
                    )
                    status, body, ctype = 400, error_body(deep, rid), "application/json"
                except Exception:
                    log.exception("unhandled error", route=route, method=label)
                    status, body, ctype = 500, error_body(internal(), rid), "application/json"
                finally:
                    if admitted:
                        budget.release()
                    self._track(-1)
                elapsed = perf_counter() - started
                _access_log(label, route, status, elapsed)
            metrics.HTTP_REQUESTS.labels(route, label, str(status)).inc()
            metrics.HTTP_DURATION.labels(route, label, f"{status // 100}xx").observe(elapsed)
            headers.update({"Content-Type": ctype, "X-Request-ID": rid})
            if head:
                # HEAD: GET's status and headers without the body (Robyn then sends
                # Content-Length: 0, which RFC 9110 allows for HEAD).
                body, stream = b"", None
            if stream is not None:
                return robyn.StreamingResponse(
                    stream, status_code=status, headers=robyn.Headers(headers), media_type=ctype
                )
            return response_cls(status_code=status, headers=headers, description=body)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    # -- answers of the pipeline itself ---------------------------------------------------

    def h_not_found(self, ctx: Ctx) -> Result:
        """Any path no route matches."""
        raise not_found("route", f"{ctx.request.method} {ctx.request.url.path}")

    def h_not_allowed(self, allow: str) -> Handler:
        def not_allowed(ctx: Ctx) -> Result:
            """A known path asked with a method it does not serve."""
            raise method_not_allowed(ctx.request.method, ctx.request.url.path, allow)

        return not_allowed

    def h_options(self, allow: str) -> Handler:
        def options(ctx: Ctx) -> Raw:
            """The methods this path serves (no CORS: the console is same-origin)."""
            return Raw(204, b"", headers={"Allow": allow})

        return options

    # -- assembly ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The API's routes, each from the module of its resource: what /openapi.json
        describes."""
        return [
            *ingest_api.routes(self),
            *catalog.routes(self),
            *crud.routes(self),
            *readings.routes(self),
            *alerts.routes(self),
            *service.routes(self),
            *rules.routes(self),
            *anomalies.routes(self),
            *report.routes(self),
            *alarm_report.routes(self),
            *alarm_summary.routes(self),
            *audit.routes(self),
            *users.routes(self),
            *health.routes(self),
            *docs.routes(self.routes),
        ]

    def static_routes(self) -> list[Route]:
        """Routes outside the API spec: the files the /docs page loads, and the console."""
        return [*docs.asset_routes(), *console.routes(self)]


def robyn_config(robyn: ModuleType, settings: HubSettings) -> Any:
    with _argv_cleared():
        from robyn.argument_parser import Config

        config = Config()
    # One process per Robyn: `workers = N` runs N hub processes of our own (hub.supervisor),
    # each a fresh interpreter; Robyn's processes would fork ours with open connections.
    config.processes = 1
    # Robyn's generated spec knows nothing of our envelope or parameters; hub.api.openapi serves
    # /openapi.json and /docs instead.
    config.disable_openapi = True
    config.workers = settings.threads  # threads; `workers` are processes (hub.supervisor)
    # Anything but "WARN" makes Robyn log a banner about verbose mode; its INFO chatter
    # (route registration, actix start) is noise in a service log.
    config.log_level = "DEBUG" if settings.log_level == "debug" else "WARN"
    return config


def create_app(settings: HubSettings, storage: Storage) -> tuple[Any, Hub]:
    """The Robyn app for ``settings`` over ``storage`` (schema must already exist)."""
    robyn = load_robyn()
    hub = Hub(settings, storage)
    app = robyn.Robyn(__file__, config=robyn_config(robyn, settings))

    def on_exception(exc: Exception) -> Any:
        # Reached only when Robyn itself fails around a handler; handlers contain their own.
        log.error("unhandled error in robyn", error=repr(exc))
        return robyn.Response(
            status_code=500, headers=dict(JSON_HEADERS), description=error_body(internal(), "")
        )

    app.exception(on_exception)
    served: dict[str, list[str]] = {}
    for method, route, roles, fn, rows, declared, slow in hub.routes() + hub.static_routes():
        scope = scope_of(method, route, roles, declared)
        # Reads that may be large, and slow work, run off Robyn's worker thread (see
        # _off_worker).
        wrap = _off_worker if rows is not None or slow else _same
        schema = not route.startswith(_NO_SCHEMA)
        get = hub.endpoint(robyn, method, route, roles, fn, rows=rows, scope=scope, schema=schema)
        app.add_route(method, route, wrap(get))
        served.setdefault(route, []).append(method)
        if method == "GET":
            head = hub.endpoint(
                robyn, method, route, roles, fn, head=True, rows=rows, scope=scope, schema=schema
            )
            app.add_route("HEAD", route, wrap(head))
            served[route].append("HEAD")
    for route, methods in served.items():
        allow = ", ".join([*methods, "OPTIONS"])
        options = hub.endpoint(robyn, "OPTIONS", route, None, hub.h_options(allow))
        app.add_route("OPTIONS", route, options)
        for method in METHODS:
            if method not in methods and method != "OPTIONS":
                handler = hub.endpoint(robyn, method, route, None, hub.h_not_allowed(allow))
                app.add_route(_http_method(robyn, method), route, handler)
    # Robyn's router (matchit) lets a catch-all stand beside every other route: specific
    # routes win, and anything else gets the 404 envelope instead of a plain-text 404.
    # "/*rest" does not match "/" itself, hence the second route.
    for method in METHODS:
        for route in ("/", "/*rest"):
            if route in served:  # "/" is the console's
                continue
            handler = hub.endpoint(
                robyn, method, NOT_FOUND_ROUTE, None, hub.h_not_found, head=method == "HEAD"
            )
            app.add_route(_http_method(robyn, method), route, handler)
    return app, hub


def scope_of(method: str, path: str, roles: tuple[Role, ...] | None, scope: Scope | None) -> Scope:
    """A route's scope; a route that authenticates and declares none is a bug caught here,
    when the app is built, before it could serve one factory's data to another's token."""
    if scope is None:
        if roles is not None:
            raise AssertionError(f"{method} {path} declares no factory scope (hub.api.scope)")
        return FREE  # public: nobody is authenticated, so nobody is scoped
    return scope


def _same(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return handler


def _off_worker(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``handler`` as a coroutine that runs it in a thread of the default executor.

    Robyn runs a sync handler on the worker thread that owns the connection, and a client's
    keep-alive connection stays with one worker: a sync batch whose connection shares a
    worker with a 100,000-row series waited for the whole series (seconds). Awaited in a
    thread, the series leaves the worker's event loop free for the next request."""

    async def off_worker(request: Any) -> Any:
        return await asyncio.to_thread(handler, request)

    off_worker.__name__ = handler.__name__
    off_worker.__doc__ = handler.__doc__
    return off_worker


def _http_method(robyn: ModuleType, method: str) -> Any:
    # Robyn's add_route maps method names itself, except TRACE: give it the enum.
    return robyn.HttpMethod.TRACE if method == "TRACE" else method


# Routes that answer without the hub's tables (probes, metrics, the API's docs, files).
_NO_SCHEMA = ("/health/", "/metrics", "/openapi.json", "/docs", "/static/")

_BUDGET_HINT = {
    "budget": "this token has read many rows lately (read_budget_rows_per_s); ask for "
    "fewer (a smaller limit, a narrower range, a wider bucket) or retry later",
    "concurrency": "other large reads are running (max_concurrent_heavy_reads); retry shortly",
}

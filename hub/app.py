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
from dataclasses import dataclass, field
from time import perf_counter
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import msgspec
import structlog

from hub import anomaly, metrics, retention
from hub import ingest as ingest_mod
from hub.api import anomalies as anomalies_api
from hub.api import audit, docs, lists, openapi, queries, readcost, thresholds
from hub.api import readings as readings_api
from hub.auth import READ_ROLES, Principal, Role, require
from hub.batchcheck import SensorLimits
from hub.config import HubSettings
from hub.errors import (
    JSON_HEADERS,
    ApiError,
    bad_param,
    error_body,
    internal,
    method_not_allowed,
    new_request_id,
    not_found,
    rate_limited,
    success_body,
)
from hub.ratelimit import PageRefused, RateLimiter, ReadBudget, ReadCharge, retry_after_s
from hub.storage import Storage
from hub.web.apiauth import authenticate_request

log = structlog.get_logger("hub.app")

API = "/api/v1"
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


Handler = Callable[[Ctx], "tuple[Any, dict[str, Any]] | Raw"]


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


def _complete_body(request: Any) -> bytes:
    """The request body, or 400 when it is not as long as its Content-Length says.

    Robyn hands a handler whatever arrived before the client half-closed: a batch cut off
    mid-way could still be valid JSON (a shorter array) and would be stored as if whole."""
    body = ingest_mod.body_bytes(request.body)
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


# Expected rows of a read, from its parameters: what the read budget charges up front.
RowEstimate = Callable[["Ctx"], int]


class Hub:
    """Holds what the handlers share and builds the Robyn app."""

    def __init__(self, settings: HubSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.anomaly = anomaly.AnomalyClient(settings.anomaly_url)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.read_budget = ReadBudget(
            settings.read_budget_rows_per_s,
            settings.read_budget_burst_rows,
            settings.max_concurrent_heavy_reads,
            settings.heavy_read_rows,
        )
        self.sensor_limits = SensorLimits(
            settings.max_new_sensors_per_batch, settings.max_sensors_per_factory
        )
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
    ) -> Callable[[Any], Any]:
        """Robyn's handler for ``fn``. ``head``: answer as GET would, without the body.
        ``rows``: the read's worst-case row count, for the read budget."""
        response_cls = robyn.Response
        storage = self.storage
        limiter = self.limiter
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
                    raw_body = _complete_body(request)
                    principal = None
                    if roles is not None:
                        principal = require(authenticate_request(storage, request, method), roles)
                        wait = limiter.acquire(principal.token_id)
                        if wait > 0:
                            metrics.RATE_LIMITED.inc()
                            raise rate_limited(retry_after_s(wait))
                    ctx = Ctx(request, rid, principal, raw_body)
                    if rows is not None and principal is not None:
                        ctx.reads = ReadCharge(budget, principal.token_id)
                        expected = rows(ctx)  # bad parameters: their 400 comes from here
                        if budget.is_heavy(expected):
                            refused = budget.acquire(principal.token_id, expected)
                            if refused is not None:
                                reason, wait = refused
                                metrics.READ_BUDGET_REFUSED.labels(reason).inc()
                                raise rate_limited(retry_after_s(wait), _BUDGET_HINT[reason])
                            admitted = True
                    result = fn(ctx)
                    if isinstance(result, Raw):
                        status, body, ctype = result.status, result.body, result.content_type
                        headers.update(result.headers)
                        stream = result.stream
                    else:
                        data, meta = result
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

    # -- handlers ----------------------------------------------------------------------

    def h_ingest(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """Store a sync batch from a gateway (idempotent per gateway and seq)."""
        assert ctx.principal is not None
        request = ctx.request
        try:
            result = ingest_mod.ingest(
                self.storage,
                ctx.principal,
                ctx.body,
                request.headers.get("content-encoding"),
                max_body_bytes=self.settings.max_body_bytes,
                max_decompressed_bytes=self.settings.max_decompressed_bytes,
                window=self.settings.ts_window(),
                sensor_limits=self.sensor_limits,
            )
        except ApiError as err:
            metrics.INGEST_BATCHES.labels(str(err.status)).inc()
            if err.status == 422:
                rejected = {d.get("seq") for d in err.details if isinstance(d.get("seq"), int)}
                metrics.INGEST_READINGS.labels("rejected").inc(len(rejected))
            raise
        metrics.INGEST_BATCHES.labels("200").inc()
        data = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "config_version": result.config_version,
        }
        return data, {"gateway_id": ctx.principal.gateway_name}

    def h_gateways(self, ctx: Ctx) -> Raw:
        """Every registered gateway with its last report and online status (paged)."""
        return lists.gateways(self.storage, ctx)

    def h_gateway(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """One gateway by its name (e.g. gw-01)."""
        return queries.get_gateway(self.storage, ctx.path("id") or "")

    def h_factories(self, ctx: Ctx) -> Raw:
        """Every factory (paged)."""
        return lists.factories(self.storage, ctx)

    def h_machines(self, ctx: Ctx) -> Raw:
        """Machines, optionally of one factory (?factory_id=), paged."""
        return lists.machines(self.storage, ctx)

    def h_sensors(self, ctx: Ctx) -> Raw:
        """Sensors, filtered by ?machine_id=, ?factory_id= or ?key=line/machine/sensor, paged."""
        return lists.sensors(self.storage, ctx)

    def h_sensor(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """One sensor by numeric id."""
        return queries.get_sensor(self.storage, ctx.path("id"))

    def h_readings(self, ctx: Ctx) -> Any:
        """Raw readings, oldest first (?from=&to=&limit=); ?rolling=N adds rolling_avg,
        ?format=csv answers CSV."""
        return readings_api.readings(self.storage, ctx)

    def h_series(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """min/max/avg/count per time bucket (?from=&to=&bucket=60s)."""
        return queries.series(self.storage, ctx.path("id"), ctx.params)

    def h_stats(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """min/max/avg/count over a range (all readings without one)."""
        return queries.stats(self.storage, ctx.path("id"), ctx.params)

    def h_latest(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """The newest reading of a sensor."""
        return queries.latest(self.storage, ctx.path("id"))

    def h_thresholds(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """Set a sensor's thresholds {"min", "max", "deadband"}; they flow down to gateways."""
        assert ctx.principal is not None
        return thresholds.put_thresholds(self.storage, ctx.path("id"), ctx.body, ctx.principal)

    def h_gateway_config(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """Threshold rules for the sensors of a gateway's factory, with their version."""
        assert ctx.principal is not None
        return thresholds.gateway_config(self.storage, ctx.principal, ctx.path("id") or "")

    def h_alerts(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """A fresh threshold check of the last N readings (?limit=100)."""
        return thresholds.sensor_alerts(self.storage, ctx.path("id"), ctx.params)

    def h_anomalies(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """Anomalies in the last N readings (?limit=100&threshold=2.0&method=zscore|mad);
        ?stored=true answers from the background scan. 503 when anomaly-detector is down."""
        return anomalies_api.sensor_anomalies(
            self.storage, self.anomaly, ctx.path("id"), ctx.params
        )

    def h_not_found(self, ctx: Ctx) -> tuple[Any, dict[str, Any]]:
        """Any path no route matches."""
        raise not_found("route", f"{ctx.request.method} {ctx.request.url.path}")

    def h_not_allowed(self, allow: str) -> Handler:
        def not_allowed(ctx: Ctx) -> tuple[Any, dict[str, Any]]:
            """A known path asked with a method it does not serve."""
            raise method_not_allowed(ctx.request.method, ctx.request.url.path, allow)

        return not_allowed

    def h_options(self, allow: str) -> Handler:
        def options(ctx: Ctx) -> Raw:
            """The methods this path serves (no CORS: the console is same-origin)."""
            return Raw(204, b"", headers={"Allow": allow})

        return options

    def h_live(self, ctx: Ctx) -> Raw:
        """Liveness probe: the process answers."""
        return Raw(200, b'{"status":"ok"}')

    def h_ready(self, ctx: Ctx) -> Raw:
        """Readiness probe: the database answers. The anomaly-detector's state is reported
        for information only: the hub serves (degraded) without it."""
        try:
            ok = self.storage.ping()
        except Exception as exc:
            log.warning("readiness check failed", error=str(exc))
            ok = False
        if not ok:
            err = ApiError(503, "unavailable", "database is not reachable")
            return Raw(503, error_body(err, ctx.request_id))
        body = {"status": "ready", "anomaly_detector": self.anomaly.status()}
        return Raw(200, msgspec.json.encode(body))

    def h_metrics(self, ctx: Ctx) -> Raw:
        """Prometheus metrics."""
        self.anomaly.status(probe=True)  # refreshes edge_hub_anomaly_detector_up when stale
        circuit = self.anomaly.breaker.state
        for state in metrics.BREAKER_STATES:
            metrics.ANOMALY_DETECTOR_CIRCUIT.labels(state).set(1 if state == circuit else 0)
        retention.publish(self.storage)  # storage per tier, next expiry
        body, ctype = metrics.render()
        return Raw(200, body, ctype)

    def h_openapi(self, ctx: Ctx) -> Raw:
        """This API's OpenAPI 3.1 document."""
        if self._spec is None:
            rows = [(m, r, roles is not None, fn) for m, r, roles, fn in self.routes()]
            self._spec = msgspec.json.encode(openapi.build(rows))
        return Raw(200, self._spec)

    def h_docs(self, ctx: Ctx) -> Raw:
        """Interactive API documentation (Swagger UI over /openapi.json)."""
        return Raw(200, docs.PAGE, "text/html; charset=utf-8", dict(docs.HEADERS))

    def h_docs_asset(self, name: str) -> Handler:
        def asset(ctx: Ctx) -> Raw:
            """A Swagger UI file from the pinned swagger-ui-bundle-v2 package."""
            body, ctype = docs.asset(name)
            return Raw(200, body, ctype, dict(docs.ASSET_HEADERS))

        return asset

    # -- assembly ------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, tuple[Role, ...] | None, Handler]]:
        # Imported here: the handler modules import this one.
        from hub.api import alerts as alerts_api
        from hub.api import crud, health, report
        from hub.api import rules as rules_api

        gateway: tuple[Role, ...] = ("gateway",)
        return [
            *rules_api.routes(self, API),
            *alerts_api.routes(self, API),
            *crud.routes(self, API),
            *readings_api.routes(self, API),
            *report.routes(self, API, READ_ROLES),
            *audit.routes(self, API),
            *health.routes(self),
            ("POST", f"{API}/ingest", gateway, self.h_ingest),
            ("GET", f"{API}/gateways", READ_ROLES, self.h_gateways),
            ("GET", f"{API}/gateways/:id", READ_ROLES, self.h_gateway),
            ("GET", f"{API}/gateways/:id/config", ("gateway", *READ_ROLES), self.h_gateway_config),
            ("GET", f"{API}/factories", READ_ROLES, self.h_factories),
            ("GET", f"{API}/machines", READ_ROLES, self.h_machines),
            ("GET", f"{API}/sensors", READ_ROLES, self.h_sensors),
            ("GET", f"{API}/sensors/:id", READ_ROLES, self.h_sensor),
            ("GET", f"{API}/sensors/:id/readings", READ_ROLES, self.h_readings),
            ("GET", f"{API}/sensors/:id/series", READ_ROLES, self.h_series),
            ("GET", f"{API}/sensors/:id/stats", READ_ROLES, self.h_stats),
            ("GET", f"{API}/sensors/:id/latest", READ_ROLES, self.h_latest),
            ("GET", f"{API}/sensors/:id/alerts", READ_ROLES, self.h_alerts),
            ("GET", f"{API}/sensors/:id/anomalies", READ_ROLES, self.h_anomalies),
            ("PUT", f"{API}/sensors/:id/thresholds", ("admin",), self.h_thresholds),
            ("GET", "/health/live", None, self.h_live),
            ("GET", "/health/ready", None, self.h_ready),
            ("GET", "/metrics", None, self.h_metrics),
            ("GET", "/openapi.json", None, self.h_openapi),
            ("GET", "/docs", None, self.h_docs),
        ]

    def static_routes(self) -> list[tuple[str, str, tuple[Role, ...] | None, Handler]]:
        """Routes outside the API spec: the files the /docs page loads."""
        from hub.web import views as console  # the operator console (hub/web)

        return [
            *[("GET", f"/docs/{name}", None, self.h_docs_asset(name)) for name in docs.ASSETS],
            *console.routes(self),
        ]

    def row_estimates(self) -> dict[tuple[str, str], RowEstimate]:
        """Every read that can answer many rows, with what it may answer (hub.api.readcost)."""
        estimates: dict[str, readcost.Estimate] = {
            "/sensors/:id/readings": readcost.readings,
            "/sensors/:id/series": readcost.series,
            "/sensors/:id/alerts": readcost.sensor_alerts,
            "/sensors/:id/anomalies": readcost.anomalies,
            "/alerts/:id/journal": readcost.page,
            "/factories/:id/report": readcost.page,
            **{f"/{name}": readcost.page for name in _PAGED},
        }
        return {("GET", f"{API}{path}"): _on_params(e) for path, e in estimates.items()}


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
    estimates = hub.row_estimates()
    served: dict[str, list[str]] = {}
    for method, route, roles, fn in hub.routes() + hub.static_routes():
        rows = estimates.get((method, route))
        # Reads that may be large run off Robyn's worker thread (see _off_worker).
        wrap = _off_worker if rows is not None else _same
        get = hub.endpoint(robyn, method, route, roles, fn, rows=rows)
        app.add_route(method, route, wrap(get))
        served.setdefault(route, []).append(method)
        if method == "GET":
            head = hub.endpoint(robyn, method, route, roles, fn, head=True, rows=rows)
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


# The paged lists: at most per_page rows each.
_PAGED = ("gateways", "factories", "machines", "sensors", "alerts", "audit")


def _on_params(estimate: readcost.Estimate) -> RowEstimate:
    def rows(ctx: Ctx) -> int:
        return estimate(ctx.params)

    return rows


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


_BUDGET_HINT = {
    "budget": "this token has read many rows lately (read_budget_rows_per_s); ask for "
    "fewer (a smaller limit, a narrower range, a wider bucket) or retry later",
    "concurrency": "other large reads are running (max_concurrent_heavy_reads); retry shortly",
}

"""``GET /health/startup``, the seeds' startup probe: 200 once the schema is at this release's
version and the app serves, 503 before (a Kubernetes startupProbe holds the liveness and
readiness probes back until then).

``edge-hub serve`` migrates before it listens, so a hub that answers has normally migrated;
the probe still asks the database, because another process may hold the migration lock
(several hubs starting at once) or the database may be newer than this release. Once the
schema was seen current it stays so for this process: a schema never moves backwards.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from hub.errors import ApiError, error_body
from hub.storage import Storage

if TYPE_CHECKING:
    from hub.app import Ctx, Hub, Raw
    from hub.auth import Role

log = structlog.get_logger("hub.health")


def expected_version(storage: Storage) -> int:
    """The schema version this release's engine migrates to (its module's SCHEMA_VERSION)."""
    module = importlib.import_module(type(storage).__module__)
    return int(module.SCHEMA_VERSION)


class StartupProbe:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._started = False
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, int | None, int]:
        """(started, the database's version or None when unreachable, the expected one)."""
        want = expected_version(self.storage)
        if self._started:
            return True, want, want
        try:
            have: int | None = self.storage.schema_version()
        except Exception as exc:
            log.warning("startup check failed", error=str(exc))
            have = None
        with self._lock:
            self._started = self._started or (have is not None and have >= want)
            return self._started, have, want


Route = tuple[str, str, "tuple[Role, ...] | None", Callable[["Ctx"], Any]]


def routes(hub: Hub) -> list[Route]:
    probe = StartupProbe(hub.storage)

    def h_startup(ctx: Ctx) -> Raw:
        """Startup probe: 200 once the schema is migrated and the app serves, else 503."""
        from hub.app import Raw

        started, have, want = probe.check()
        if not started:
            why = "database unreachable" if have is None else f"schema at {have} of {want}"
            err = ApiError(503, "starting", f"not started: {why}")
            return Raw(503, error_body(err, ctx.request_id))
        return Raw(200, msgspec.json.encode({"status": "started", "schema_version": want}))

    return [("GET", "/health/startup", None, h_startup)]

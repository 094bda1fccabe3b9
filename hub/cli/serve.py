"""``edge-hub serve``: the hub, its background jobs, and a prompt exit on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from hub.background import BackgroundJob
from hub.cli.streams import err, open_serving
from hub.config import HubSettings
from hub.storage import Storage, StorageError
from shared.logs import configure_logging

if TYPE_CHECKING:
    from hub.app import Hub

log = structlog.get_logger("hub.cli")

# How long a stop signal waits for requests already inside a handler.
DRAIN_S = 10.0
FLUSH_S = 0.2
# How often a hub started without its database tries again to reach it and migrate.
RETRY_S = 1.0


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None when it can."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the server's own bind: a port left in TIME_WAIT is fine, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def install_stop_handlers(hub: Hub) -> None:
    """Exit 0 promptly on SIGTERM/SIGINT.

    Robyn 0.88 does not stop on SIGTERM by itself (issue #1324): actix starts a graceful
    shutdown but the Python event loop keeps the process alive. Exiting with os._exit is
    safe for our data: every batch is one SQLite transaction, a committed one is in the WAL
    and survives the process, and an uncommitted one is rolled back on the next open, which
    the agent sees as a failed request and retries (ingest is idempotent). We still give
    requests that are inside a handler a moment to finish, so their clients get an answer.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        deadline = time.monotonic() + DRAIN_S
        while hub.inflight > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # A handler that returned has not necessarily had its response written yet: give
        # actix a moment to flush, or a committed batch looks failed to its agent.
        time.sleep(FLUSH_S)
        # Leave a self-contained database file behind (backups, the next start's open);
        # not needed for durability, the WAL alone would be replayed.
        try:
            hub.storage.checkpoint()
        except Exception as exc:
            log.warning("checkpoint at stop failed", error=str(exc))
        log.info("edge-hub stopped", signal=signal.Signals(signum).name)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def cmd_serve(settings: HubSettings, args: argparse.Namespace) -> int:
    from hub.supervisor import is_worker, supervise

    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and not is_worker():
        # Migrate and check the port once, before any worker starts (a database that does
        # not answer yet: each worker waits for it and migrates, under the engine's lock).
        open_serving(settings)[0].close()
        problem = port_problem(settings.host, settings.port)
        if problem:
            print(f"edge-hub: cannot listen on {settings.listen}: {problem}", file=err())
            return 1
        return supervise(settings.workers, args.config_file)
    storage, migrated = open_serving(settings)
    storage.maintain_rollups = settings.rollups
    storage.alerts.limits = settings.alarms.limits()
    # A worker's siblings hold the port already (SO_REUSEPORT); the supervisor checked it.
    problem = None if is_worker() else port_problem(settings.host, settings.port)
    if problem:
        print(f"edge-hub: cannot listen on {settings.listen}: {problem}", file=err())
        return 1
    from hub.app import create_app

    app, hub = create_app(settings, storage)
    install_stop_handlers(hub)
    if migrated:
        start_jobs(settings, storage, hub)
    else:
        # Not ready (/health/ready checks the schema) until this has migrated; the jobs
        # would only fail against a database without the hub's tables, and so would the
        # requests a load balancer sends before it sees that: they get 503 till then.
        hub.schema_ready.clear()

        def migrated_now() -> None:
            hub.schema_ready.set()
            start_jobs(settings, storage, hub)

        SchemaWait(storage, migrated_now).start()
    url = f"http://{settings.host}:{settings.port}"
    print(f"edge-hub listening on {url}", file=err(), flush=True)
    # _check_port=False: Robyn's own check prompts on stdin for another port.
    app.start(host=settings.host, port=settings.port, _check_port=False)
    return 0


class SchemaWait(BackgroundJob):
    """Migrates once the database answers, then calls ``then`` (a hub started while its
    database was down)."""

    name = "schema-wait"

    def __init__(self, storage: Storage, then: Callable[[], None]) -> None:
        super().__init__()
        self.storage = storage
        self.then = then

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.storage.migrate()
            except StorageError as exc:  # still down, or only a standby during a failover
                log.warning("database not ready; migrating once it answers", error=str(exc))
                self._stop.wait(RETRY_S)
                continue
            log.info("database answers; schema migrated", steps=ran)
            self.then()
            return


def start_jobs(settings: HubSettings, storage: Storage, hub: Hub) -> None:
    if settings.anomaly_scan_interval_s > 0:
        from hub.worker import AnomalyScanner

        AnomalyScanner(
            storage,
            hub.anomaly,
            interval_s=settings.anomaly_scan_interval_s,
            limit=settings.anomaly_scan_limit,
            threshold=settings.anomaly_scan_threshold,
            method=settings.anomaly_scan_method,
        ).start()
    from hub.notify import WebhookSender
    from hub.worker import AlertWatch

    AlertWatch(
        storage,
        offline_after_s=settings.alerts.gateway_offline_after_s,
        interval_s=settings.alerts.check_interval_s,
    ).start()
    if settings.webhooks:
        WebhookSender(storage, settings.webhooks).start()
    from hub.retention import RetentionJob

    RetentionJob(storage, settings.retention).start()

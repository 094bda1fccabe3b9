"""The one face of the hub's database: what handlers, the CLI, the worker and the tests use.

``Storage(target)`` opens the engine that ``target`` names, like :class:`pathlib.Path` picks
its flavour: a ``database`` URL from hub.toml (``sqlite:////abs/hub.db``,
``postgresql://...``) or a plain SQLite file path. Nothing outside ``hub.storage`` knows
which engine runs.

The face is kept as one stable contract with every method the hub needs; each is a one-line
delegation to the concern that owns it (``storage.ingest``, ``storage.rollups``,
``storage.alerts``...: see hub.storage), which new code may also call directly. Here: the
lifecycle, the engine's seams and what the machines do (ingest, retention, anomaly scans,
edge and fleet alerts, webhooks); the reads are in hub.storage.read_face, the writes people
make in hub.storage.people_face. An engine (sqlite/, postgres/) gives the face its pool and
dialect and runs its own migrations.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from hub.auth import TokenRecord
from hub.storage.access import Access
from hub.storage.alarm_report import AlarmReport
from hub.storage.alarm_summary import AlarmSummary
from hub.storage.alerts import Alerts
from hub.storage.audit import Audit
from hub.storage.bulk import Backfill
from hub.storage.catalog import Catalog
from hub.storage.crud import Crud
from hub.storage.dialect import Dialect
from hub.storage.ingest import Ingest
from hub.storage.model import (
    Bucket,
    FoundAnomaly,
    GatewayReport,
    Page,
    ReadingRow,
    SensorCache,
    Stats,
    StoreResult,
    TierUsage,
)
from hub.storage.offline import Offline
from hub.storage.owners import Owners
from hub.storage.people_face import PeopleFace
from hub.storage.quotas import Quotas
from hub.storage.read_face import ReadFace
from hub.storage.reads import Reads
from hub.storage.reports import Reports
from hub.storage.rollups import Rollups
from hub.storage.rules import Rules
from hub.storage.service import Service
from hub.storage.sqlbase import Conn, Database
from hub.storage.sso import SingleSignOn
from hub.storage.url import parse_database
from hub.storage.users import Users
from hub.storage.webhooks import Webhooks
from shared.wire import WireAlert, WireMark, WireReading

__all__ = ["Bucket", "Page", "Stats", "Storage", "TierUsage", "engine_class"]

# The engine for each ``database`` scheme, by module and class: looked up by name when a
# storage opens, as Django loads a database backend, so this face does not import the
# engines that build on it.
ENGINES = {
    "sqlite": ("hub.storage.sqlite", "SQLiteStorage"),
    "postgresql": ("hub.storage.postgres", "PostgresStorage"),
}


def engine_class(target: str) -> type[Storage]:
    """The engine for a ``database`` URL, or for a plain path (an SQLite file)."""
    module, name = ENGINES[parse_database(target).engine]
    engine: type[Storage] = getattr(importlib.import_module(module), name)
    return engine


class Storage(ReadFace, PeopleFace, ABC):
    def __new__(cls, *args: Any, **kwargs: Any) -> Storage:
        if cls is Storage:
            target = args[0] if args else kwargs.get("target", "")
            return super().__new__(engine_class(str(target)))
        return super().__new__(cls)

    def _assemble(self, db: Database, dialect: Dialect, history: Database | None = None) -> None:
        """Build the concerns over an engine's database handle and dialect (its __init__
        calls this), each given the collaborators it uses. ``history``: the read database's
        handle, for the history reads (hub.storage.read_face)."""
        cache: SensorCache = {}
        self.db = db
        self.dialect = dialect
        self.access = Access(db)
        self.users = Users(db)
        self.sso = SingleSignOn(db)  # single sign-on's accounts and sign-ins under way
        self.quotas = Quotas(db)  # rate limits and read budgets, shared by every process
        self.owners = Owners(db)  # what a factory scope is checked against
        self.audit = Audit(db)
        self.catalog = Catalog(db, cache)
        self.reads = Reads(db)
        self.rollups = Rollups(db, dialect, self.reads)
        self.alerts = Alerts(db, dialect)
        self.offline = Offline(db)
        self.rules = Rules(db)
        self.webhooks = Webhooks(db)
        self.reports = Reports(db, dialect)
        self.alarm_report = AlarmReport(db)
        self.alarm_summary = AlarmSummary(db)
        self.ingest = Ingest(db, dialect, cache, self.rollups, self.alerts, self.offline)
        self.backfill = Backfill(db, dialect, self.ingest)
        # A sensor's rows go children first: alerts (and their journal) before the rules
        # they name, then readings, anomalies, rollups.
        self.service = Service(db, self.alerts)
        cascade = (self.alerts, self.service, self.rules, self.reads, self.reports, self.rollups)
        self.crud = Crud(db, dialect, cache, cascade, self.service)
        self.history_reads, self.history_rollups, self.history_reports = (
            (self.reads, self.rollups, self.reports)
            if history is None
            else (
                reads := Reads(history),
                Rollups(history, dialect, reads),
                Reports(history, dialect),
            )
        )

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    def migrate(self) -> int:
        """Bring the schema to this release's version, keeping all data; returns how many
        migrations ran. Safe when several hub processes call it at once. StorageError when
        the database is newer than this edge-hub."""

    def init_schema(self) -> None:
        """Alias of :meth:`migrate` for callers that do not care how many ran."""
        self.migrate()

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the database is at (0: empty)."""

    @abstractmethod
    def checkpoint(self) -> None:
        """Leave the database self-contained at a clean stop (SQLite: fold the WAL in)."""

    def ping(self) -> bool:
        return self.db.ping()

    @abstractmethod
    def close(self) -> None: ...

    # -- transactions and seams, for tools and tests ---------------------------------------

    def _reader(self, snapshot: bool = False) -> AbstractContextManager[Conn]:
        return self.db.reader(snapshot)

    def _write(self) -> AbstractContextManager[Conn]:
        return self.db.write()

    def before_readings(self, ts_values: Sequence[float]) -> None:
        """Make storage ready for readings at these times (PostgreSQL: their partitions)."""
        self.dialect.before_readings(ts_values)

    @property
    def delete_rollups(self) -> Callable[[Conn, int], None]:
        return self.rollups.delete_sensor

    @delete_rollups.setter
    def delete_rollups(self, delete: Callable[[Conn, int], None]) -> None:
        self.rollups.delete_sensor = delete  # type: ignore[method-assign,assignment]

    # A batch's readings insert and edge alert store: a test makes a batch fail half-way.
    @property
    def _insert_readings(self) -> Callable[[Conn, list[ReadingRow]], int]:
        return self.ingest.insert_rows

    @_insert_readings.setter
    def _insert_readings(self, insert: Callable[[Conn, list[ReadingRow]], int]) -> None:
        self.ingest.insert_rows, self.ingest.at_once = insert, False  # type: ignore[method-assign,assignment]

    @property
    def _upsert_alerts(self) -> Callable[..., None]:
        return self.alerts.record_edge_alerts

    @_upsert_alerts.setter
    def _upsert_alerts(self, record: Callable[..., None]) -> None:
        self.alerts.record_edge_alerts = record  # type: ignore[method-assign]

    # -- a request's token (hub.storage.access) --------------------------------------------

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        return self.access.token_by_hash(token_hash)

    # -- ingest ----------------------------------------------------------------------------

    def store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert] = (),
        token_id: int | None = None,
    ) -> StoreResult:
        """Store a batch all or nothing; each (gateway, seq) once, however often it comes;
        TokenRevoked unless ``token_id`` (when given) and the gateway are still valid."""
        return self.ingest.store_batch(gateway_id, factory_id, readings, report, alerts, token_id)

    def apply_marks(self, factory_id: int, marks: Sequence[WireMark]) -> int:
        """A batch's Sparkplug stale/fresh marks; the latest mark per sensor wins."""
        return self.ingest.apply_marks(factory_id, marks)

    # -- history: rollup tiers and retention (hub.storage.rollups) -------------------------
    # False only in benchmarks: ingest then skips rollup maintenance (hub.toml ``rollups``).
    @property
    def maintain_rollups(self) -> bool:
        return self.rollups.maintain

    @maintain_rollups.setter
    def maintain_rollups(self, on: bool) -> None:
        self.rollups.maintain = on

    def expire(self, tier: str, cutoff: float, max_rows: int) -> int:
        """One bounded step of retention: remove at most ``max_rows`` of ``tier`` ("raw",
        "1m", "1h") older than ``cutoff``, in one short transaction (PostgreSQL drops whole
        day partitions of raw readings instead); 0 when nothing older is left."""
        return self.rollups.expire(tier, cutoff, max_rows)

    def record_tier_status(self, rows: Sequence[tuple[TierUsage, float | None]], at: float) -> None:
        """Keep the retention job's measurements (with each tier's next expiry) for /metrics."""
        return self.rollups.record_tier_status(rows, at)

    def exclusive_job(self, name: str) -> AbstractContextManager[bool]:
        """Run a periodic job's round in one hub process only: the block gets True when this
        process holds the job (PostgreSQL: a session advisory lock), False when another does."""
        return self.rollups.exclusive_job(name)

    # -- a gateway's config (hub.storage.catalog) ------------------------------------------

    def gateway_config(self, name: str) -> tuple[int, list[dict[str, Any]]] | None:
        """(config version, rules) for gateway ``name``'s factory; None if no such gateway.

        Rules are the sensors with at least one bound: ``{"key", "min", "max", "deadband"}``.
        Version and rules come from one read transaction, so they always match.
        """
        return self.catalog.gateway_config(name)

    # -- anomaly scans and edge alerts -----------------------------------------------------

    def take_scan_queue(self, limit: int) -> list[int]:
        """Up to ``limit`` sensors that got readings since their last scan, taken off the
        queue (every stored batch queues its sensors, in its own transaction)."""
        return self.reports.take_scan_queue(limit)

    def requeue_scans(self, sensor_ids: Sequence[int]) -> None:
        """Put sensors back on the scan queue (their scan could not run)."""
        return self.reports.requeue_scans(sensor_ids)

    def try_lead(self, job: str) -> bool:
        """True when this process runs ``job`` among all hub processes on this database (it
        keeps the lead until :meth:`close` or its death); False when another one does."""
        return self.dialect.try_lead(job)

    def store_anomaly_scan(
        self,
        sensor_id: int,
        method: str,
        threshold: float,
        analyzed: int,
        statistics: dict[str, Any],
        found: Sequence[FoundAnomaly],
    ) -> int:
        """Record a scan of one sensor; returns how many anomalies were new."""
        return self.reports.store_anomaly_scan(
            sensor_id, method, threshold, analyzed, statistics, found
        )

    # -- a gateway's rules, edge and fleet alerts, webhooks (rules, alerts, offline) -------

    def gateway_alert_rules(self, name: str) -> list[dict[str, Any]]:
        """The enabled rules of gateway ``name``'s factory, each with its sensor's key."""
        return self.rules.gateway_alert_rules(name)

    def active_edge_alerts(self, gateway_id: int, edge_ids: Sequence[int]) -> dict[int, float]:
        """Of gateway ``gateway_id``'s own alert ids ``edge_ids``, those the hub holds
        active, with the opened_at it has for each."""
        return self.alerts.active_edge_alerts(gateway_id, edge_ids)

    def expire_shelves(self, at: float | None = None) -> int:
        return self.alerts.expire_shelves(at)

    def evaluate_gateways(self, offline_after_s: float, at: float | None = None) -> dict[str, int]:
        """Open/clear gateway_offline alerts; {"opened": n, "cleared": n}."""
        return self.offline.evaluate_gateways(offline_after_s, at)

    def alert_events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        return self.webhooks.alert_events_after(after, limit)

    def webhook_lease(self, url: str, owner: str, lease_s: float) -> int | None:
        return self.webhooks.webhook_lease(url, owner, lease_s)

    def webhook_delivered(self, url: str, owner: str, event: int) -> bool:
        return self.webhooks.webhook_delivered(url, owner, event)

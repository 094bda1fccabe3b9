"""The one interface to the hub's database: what handlers, the CLI and the worker use.

Every engine (SQLite, PostgreSQL) implements :class:`Storage`; nothing outside
``hub.storage`` knows which one runs. ``Storage(target)`` opens the engine that ``target``
names, like :class:`pathlib.Path` picks its flavour: a ``database`` URL from hub.toml
(``sqlite:////abs/hub.db``, ``postgresql://...``) or a plain SQLite file path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.auth import Role, TokenRecord
from hub.storage.model import FoundAnomaly, GatewayReport, StoreResult, Thresholds
from shared.wire import WireAlert, WireMark, WireReading

if TYPE_CHECKING:
    from hub.storage.alerts import Actor, AlertFilter
    from hub.storage.audit import AuditEntry, Who
    from hub.storage.bulk import BulkRow
    from hub.storage.report import RollingRow
    from hub.storage.rules import RuleSpec
    from hub.storage.sessions import SessionRow

Stats = tuple[float | None, float | None, float | None, int, float | None, float | None]
# One page of a list (rows, how many there are in all).
Page = tuple[list[dict[str, Any]], int]
# (bucket start, min, max, avg, count, first ts, first value, last ts, last value)
Bucket = tuple[float, float, float, float, int, float, float, float, float]


@dataclass(frozen=True, slots=True)
class TierUsage:
    """One storage tier (raw, 1m, 1h): rows, bytes (None: the engine cannot tell), oldest."""

    tier: str
    rows: int
    bytes: int | None
    oldest: float | None


class Storage(ABC):
    def __new__(cls, *args: Any, **kwargs: Any) -> Storage:
        if cls is Storage:
            from hub.storage.engines import engine_class

            target = args[0] if args else kwargs.get("target", "")
            return super().__new__(engine_class(str(target)))
        return super().__new__(cls)

    # -- lifecycle ------------------------------------------------------------------------

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

    @abstractmethod
    def ping(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- factories, gateways, tokens ------------------------------------------------------

    @abstractmethod
    def add_gateway(self, name: str, factory: str, token_hash: str, *, rotate: bool = False) -> int:
        """Register gateway ``name`` in ``factory`` with a token; returns the gateway row id.

        ``rotate``: the gateway may exist (in the same factory); its old tokens are revoked.
        Conflict when it exists and ``rotate`` is false, or exists in another factory.
        """

    @abstractmethod
    def add_token(self, role: Role, token_hash: str) -> int: ...

    @abstractmethod
    def token_by_hash(self, token_hash: str) -> TokenRecord | None: ...

    @abstractmethod
    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token's id, role, gateway, creation time and state; never the hash."""

    @abstractmethod
    def revoke_token(self, token_id: int) -> bool:
        """Revoke one token (its next request gets 401); False if there is no such token."""

    @abstractmethod
    def revoke_gateway(self, name: str) -> bool:
        """Revoke gateway ``name`` and all its tokens; False if there is no such gateway.

        Its data stays. ``add_gateway(..., rotate=True)`` re-enables it with a new token.
        """

    # -- ingest ---------------------------------------------------------------------------

    @abstractmethod
    def store_batch(
        self,
        gateway_id: int,
        factory_id: int,
        readings: Sequence[WireReading],
        report: GatewayReport,
        alerts: Sequence[WireAlert] = (),
    ) -> StoreResult:
        """Store a batch all or nothing; each (gateway, seq) once, however often it comes."""

    @abstractmethod
    def apply_marks(self, factory_id: int, marks: Sequence[WireMark]) -> int:
        """A batch's Sparkplug stale/fresh marks; the latest mark per sensor wins."""

    # -- read side ------------------------------------------------------------------------

    @abstractmethod
    def list_gateways(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def get_gateway(self, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list_factories(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def list_machines(self, factory_id: int | None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def list_sensors(
        self, machine_id: int | None = None, key: str | None = None, factory_id: int | None = None
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    def get_sensor(self, sensor_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def sensor_census(self, factory_id: int, keys: Collection[str]) -> tuple[int | None, set[str]]:
        """(how many sensors factory ``factory_id`` has, which of ``keys`` are among them):
        what ingest needs to cap new sensors before it writes (hub.batchcheck). The count is
        None when every key is known: the batch creates no sensor, and counting them would
        cost a query per batch for nothing."""

    @abstractmethod
    def readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int
    ) -> list[tuple[int, float, float]]:
        """(reading id, ts, value), oldest first, at most ``limit``; [start, end)."""

    @abstractmethod
    def series(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[tuple[float, float, float, float, int]]:
        """(bucket start, min, max, avg, count) per bucket, oldest first, at most ``limit``."""

    @abstractmethod
    def stats(self, sensor_id: int, start: float | None, end: float | None) -> Stats:
        """(min, max, avg, count, first ts, last ts) over the range."""

    @abstractmethod
    def latest(self, sensor_id: int) -> tuple[int, float, float] | None: ...

    @abstractmethod
    def count_readings(self, gateway_id: int | None = None) -> int: ...

    @abstractmethod
    def last_readings(self, sensor_id: int, limit: int) -> list[tuple[int, float, float]]:
        """The newest ``limit`` readings as (reading id, ts, value), oldest first."""

    @abstractmethod
    def readings_after(
        self,
        sensor_id: int,
        after: tuple[float, int] | None,
        start: float | None,
        end: float | None,
        limit: int,
    ) -> list[tuple[int, float, float]]:
        """A page of [start, end) oldest first, past the reading ``after`` (its ts and id):
        keyset paging, so each page costs what the first does."""

    @abstractmethod
    def readings_before(self, sensor_id: int, ts: float, limit: int) -> list[float]:
        """The values of the last ``limit`` readings before ``ts``, oldest first."""

    # -- history: rollup tiers and retention (hub.storage.rollups) ------------------------

    # False only in benchmarks: ingest then skips rollup maintenance (hub.toml ``rollups``).
    maintain_rollups: bool = True

    @abstractmethod
    def buckets(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[Bucket]:
        """Per bucket of ``bucket`` seconds (aligned to the epoch), oldest first, at most
        ``limit``: from the rollup tiers where they cover it whole, raw readings elsewhere."""

    @abstractmethod
    def history_span(self, sensor_id: int) -> tuple[float, float] | None:
        """(first, last) ts of everything stored for a sensor, any tier; None: nothing."""

    @abstractmethod
    def expire(self, tier: str, cutoff: float, max_rows: int) -> int:
        """One bounded step of retention: remove at most ``max_rows`` of ``tier`` ("raw",
        "1m", "1h") older than ``cutoff``, in one short transaction (PostgreSQL drops whole
        day partitions of raw readings instead); 0 when nothing older is left."""

    @abstractmethod
    def tier_usage(self) -> list[TierUsage]:
        """What each tier holds now (counts every row: for the periodic job, not per request)."""

    @abstractmethod
    def record_tier_status(self, rows: Sequence[tuple[TierUsage, float | None]], at: float) -> None:
        """Keep the retention job's measurements (with each tier's next expiry) for /metrics."""

    @abstractmethod
    def exclusive_job(self, name: str) -> AbstractContextManager[bool]:
        """Run a periodic job's round in one hub process only: the block gets True when this
        process holds the job (PostgreSQL: a session advisory lock), False when another does."""

    @abstractmethod
    def tier_status(self) -> list[dict[str, Any]]:
        """The last recorded measurements: tier, rows, bytes, oldest, next_expiry, measured_at."""

    # -- thresholds and gateway config ----------------------------------------------------

    @abstractmethod
    def set_thresholds(
        self, sensor_id: int, thresholds: Thresholds, *, actor: Who | None = None
    ) -> int | None:
        """Set a sensor's thresholds; returns its factory's config version (None: no sensor).

        The version moves only when something changed, so repeating a PUT is a no-op.
        ``actor``: who asked; the change log's row commits with the change.
        """

    @abstractmethod
    def gateway_config(self, name: str) -> tuple[int, list[dict[str, Any]]] | None:
        """(config version, rules) for gateway ``name``'s factory; None if no such gateway.

        Rules are the sensors with at least one bound: ``{"key", "min", "max", "deadband"}``.
        Version and rules come from one read transaction, so they always match.
        """

    # -- anomaly scans and edge alerts ----------------------------------------------------

    @abstractmethod
    def take_scan_queue(self, limit: int) -> list[int]:
        """Up to ``limit`` sensors that got readings since their last scan, taken off the
        queue (every stored batch queues its sensors, in its own transaction)."""

    @abstractmethod
    def requeue_scans(self, sensor_ids: Sequence[int]) -> None:
        """Put sensors back on the scan queue (their scan could not run)."""

    @abstractmethod
    def try_lead(self, job: str) -> bool:
        """True when this process runs ``job`` among all hub processes on this database (it
        keeps the lead until :meth:`close` or its death); False when another one does."""

    @abstractmethod
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

    @abstractmethod
    def anomaly_scan(self, sensor_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def stored_anomalies(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` stored anomalies of a sensor, oldest first."""

    @abstractmethod
    def edge_alerts(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts the edge raised for a sensor, newest first."""

    # -- alert rules, fleet alerts, webhook outbox (rules.py, alerts.py) ------------------

    @abstractmethod
    def list_rules(self, sensor_id: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def get_rule(self, rule_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def add_rule(
        self, sensor_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None:
        """(the new rule, its factory's config version); None: no such sensor. ``actor``:
        recorded in the change log in the same transaction (so for update and delete)."""

    @abstractmethod
    def update_rule(
        self, rule_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None: ...

    @abstractmethod
    def delete_rule(self, rule_id: int, *, actor: Who | None = None) -> int | None:
        """The factory's new config version; None: no such rule."""

    @abstractmethod
    def gateway_alert_rules(self, name: str) -> list[dict[str, Any]]:
        """The enabled rules of gateway ``name``'s factory, each with its sensor's key."""

    @abstractmethod
    def list_alerts(
        self, where: AlertFilter, offset: int, limit: int, at: float | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(a page of the fleet's alerts, newest first; how many match in all)."""

    @abstractmethod
    def get_alert(self, alert_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def alert_journal(self, alert_id: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def journal_page(
        self, alert_id: int, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """(``limit`` journal entries of an alert from ``offset``, oldest first; how many)."""

    @abstractmethod
    def journal_tail(self, alert_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(an alert's newest ``limit`` journal entries, oldest first; how many in all)."""

    @abstractmethod
    def active_edge_alerts(self, gateway_id: int, edge_ids: Sequence[int]) -> dict[int, float]:
        """Of gateway ``gateway_id``'s own alert ids ``edge_ids``, those the hub holds
        active, with the opened_at it has for each."""

    @abstractmethod
    def acknowledge_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: acknowledged already."""

    @abstractmethod
    def shelve_alert(
        self, alert_id: int, actor: Actor, until: float, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: the alert is cleared."""

    @abstractmethod
    def unshelve_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: not shelved."""

    @abstractmethod
    def expire_shelves(self, at: float | None = None) -> int: ...

    @abstractmethod
    def evaluate_gateways(self, offline_after_s: float, at: float | None = None) -> dict[str, int]:
        """Open/clear gateway_offline alerts; {"opened": n, "cleared": n}."""

    @abstractmethod
    def stale_sensors(self, sensor_ids: Iterable[int]) -> set[int]: ...

    @abstractmethod
    def alert_events_after(self, after: int, limit: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def webhook_lease(self, url: str, owner: str, lease_s: float) -> int | None: ...

    @abstractmethod
    def webhook_delivered(self, url: str, owner: str, event: int) -> bool: ...

    # -- operators' edits of the model, paged lists (hub.storage.crud) --------------------
    # Each change commits with its audit row; Conflict: a name taken or children left;
    # crud.Unknown: the body names a parent that does not exist. None/False: no such row.

    @abstractmethod
    def gateways_page(self, offset: int, limit: int) -> Page: ...

    @abstractmethod
    def factories_page(self, offset: int, limit: int) -> Page: ...

    @abstractmethod
    def machines_page(self, factory_id: int | None, offset: int, limit: int) -> Page: ...

    @abstractmethod
    def sensors_page(
        self,
        offset: int,
        limit: int,
        *,
        machine_id: int | None = None,
        key: str | None = None,
        factory_id: int | None = None,
    ) -> Page: ...

    @abstractmethod
    def get_factory(self, factory_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def create_factory(self, name: str, location: str | None, actor: Who) -> dict[str, Any]: ...

    @abstractmethod
    def update_factory(
        self, factory_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None: ...

    @abstractmethod
    def delete_factory(self, factory_id: int, actor: Who) -> bool: ...

    @abstractmethod
    def get_machine(self, machine_id: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def machines_named(self, line: str, name: str) -> list[dict[str, Any]]:
        """Every machine on ``line`` called ``name``, whatever its factory."""

    @abstractmethod
    def create_machine(self, fields: dict[str, Any], actor: Who) -> dict[str, Any]: ...

    @abstractmethod
    def update_machine(
        self, machine_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None: ...

    @abstractmethod
    def delete_machine(self, machine_id: int, actor: Who) -> bool: ...

    @abstractmethod
    def create_sensor(self, fields: dict[str, Any], actor: Who) -> dict[str, Any]: ...

    @abstractmethod
    def update_sensor(
        self, sensor_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None: ...

    @abstractmethod
    def delete_sensor(self, sensor_id: int, actor: Who) -> dict[str, int] | None:
        """Delete a sensor with its readings, rollups, anomalies, rules and alerts; how many
        rows of each table went."""

    # -- back-fill, derived reads, the change log -----------------------------------------

    @abstractmethod
    def bulk_insert(self, rows: Sequence[BulkRow], actor: Who) -> int:
        """Store (sensor_id, ts, value) rows once per (sensor, ts); how many were new.
        bulk.UnknownSensors (nothing stored) when a sensor id does not exist."""

    @abstractmethod
    def rolling_readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int, window: int
    ) -> list[RollingRow]: ...

    @abstractmethod
    def factory_alert_intervals(
        self, factory_id: int, start: float | None, end: float | None
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    def record_audit(self, entry: AuditEntry) -> None:
        """Record a change already committed (hub.storage.audit.write_entry records one
        inside the change's own transaction)."""

    @abstractmethod
    def audit_page(
        self,
        offset: int,
        limit: int,
        *,
        target: str | None = None,
        target_id: str | None = None,
        token_id: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> Page: ...

    # -- console sessions (hub.storage.sessions, hub.web.session) -------------------------

    @abstractmethod
    def create_session(
        self, id_hash: str, token_hash: str, csrf: str, expires_at: float, max_per_token: int
    ) -> int: ...

    @abstractmethod
    def session_by_hash(self, id_hash: str) -> SessionRow | None: ...

    @abstractmethod
    def delete_session(self, id_hash: str) -> bool: ...

    # -- console sign-in throttle (hub.storage.signin, hub.web.throttle) -------------------

    @abstractmethod
    def sign_in_attempt(
        self, keys: Sequence[str], at: float, window_s: float
    ) -> list[tuple[int, float]]: ...

    @abstractmethod
    def sign_in_forgive(self, counted: Sequence[str], cleared: Sequence[str]) -> None: ...

"""The read side of the hub's storage face: every question handlers, jobs and tests ask.

:class:`hub.storage.Storage` is this plus the writes, the lifecycle and the engine's seams
(hub.storage.interface). Each method is a one-line delegation to the concern that owns it;
the concerns are built by ``Storage._assemble``. Kept apart from the writes because it is the
part a read replica could answer, and so the face stays a size a reader can take in.

The history reads (raw readings, series, stats, history spans, export pages, rolling averages
and report intervals) go to the ``history_*`` concerns: a read database's when one is set.
Everything else, and whatever must see its own write, reads the primary.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from hub.storage.alarm_report import AlarmHistory, AlarmReport
from hub.storage.alerts import AlertFilter, Alerts
from hub.storage.audit import Audit
from hub.storage.catalog import Catalog
from hub.storage.crud import Crud
from hub.storage.model import Bucket, Page, Stats, TierUsage
from hub.storage.offline import Offline
from hub.storage.reads import Reads
from hub.storage.reports import Reports, RollingRow
from hub.storage.rollups import Rollups, look_back
from hub.storage.rules import Rules

_DAY_S = 86400.0


class ReadFace:
    # The concerns the reads go to (set by Storage._assemble).
    reads: Reads
    rollups: Rollups
    catalog: Catalog
    crud: Crud
    alerts: Alerts
    rules: Rules
    reports: Reports
    alarm_report: AlarmReport
    offline: Offline
    audit: Audit
    # The history reads' own concerns: over the read database when one is set (PostgreSQL's
    # ``read_database``), else the same objects as above.
    history_reads: Reads
    history_rollups: Rollups
    history_reports: Reports

    def list_gateways(self) -> list[dict[str, Any]]:
        return self.catalog.list_gateways()

    def get_gateway(self, name: str) -> dict[str, Any] | None:
        return self.catalog.get_gateway(name)

    def list_factories(self) -> list[dict[str, Any]]:
        return self.catalog.list_factories()

    def list_machines(self, factory_id: int | None) -> list[dict[str, Any]]:
        return self.catalog.list_machines(factory_id)

    def list_sensors(
        self, machine_id: int | None = None, key: str | None = None, factory_id: int | None = None
    ) -> list[dict[str, Any]]:
        return self.catalog.list_sensors(machine_id, key, factory_id)

    def get_sensor(self, sensor_id: int) -> dict[str, Any] | None:
        return self.catalog.get_sensor(sensor_id)

    def sensor_census(self, factory_id: int, keys: Collection[str]) -> tuple[int | None, set[str]]:
        """(how many sensors factory ``factory_id`` has, which of ``keys`` are among them):
        what ingest needs to cap new sensors before it writes (hub.batchcheck). The count is
        None when every key is known: the batch creates no sensor, and counting them would
        cost a query per batch for nothing."""
        return self.catalog.sensor_census(factory_id, keys)

    def readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int
    ) -> list[tuple[int, float, float]]:
        """(reading id, ts, value), oldest first, at most ``limit``; [start, end)."""
        return self.history_reads.readings(sensor_id, self._from(sensor_id, start), end, limit)

    def _from(self, sensor_id: int, start: float | None) -> float | None:
        """``start``, or for a range open below, a bound under every raw reading the sensor
        has: a day before its coarsest tier's first. Open below, the query starts a scan of
        every day partition on PostgreSQL (24 ms with three years of days, 0.1 ms with a
        week). Every raw reading is folded into the tiers as it is stored, and the tiers
        expire after raw readings; only with ``hour_days`` equal to ``raw_days`` can the
        first half of the oldest day lose its 12-hour row first, hence the day's margin."""
        if start is not None:
            return start
        span = self.history_rollups.history_span(sensor_id)
        return None if span is None else span[0] - _DAY_S

    def series(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[tuple[float, float, float, float, int]]:
        """(bucket start, min, max, avg, count) per bucket, oldest first, at most ``limit``."""
        return self.history_rollups.series(sensor_id, start, end, bucket, limit)

    def stats(self, sensor_id: int, start: float | None, end: float | None) -> Stats:
        """(min, max, avg, count, first ts, last ts) over the range."""
        return self.history_rollups.stats(sensor_id, start, end)

    def latest(self, sensor_id: int) -> tuple[int, float, float] | None:
        return self.rollups.latest(sensor_id)

    def count_readings(self, gateway_id: int | None = None) -> int:
        return self.reads.count_readings(gateway_id)

    def last_readings(self, sensor_id: int, limit: int) -> list[tuple[int, float, float]]:
        """The newest ``limit`` readings as (reading id, ts, value), oldest first."""
        return self.rollups.last_readings(sensor_id, limit)

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
        if after is None:
            start = self._from(sensor_id, start)
        return self.history_reads.readings_after(sensor_id, after, start, end, limit)

    def readings_before(self, sensor_id: int, ts: float, limit: int) -> list[float]:
        """The values of the last ``limit`` readings before ``ts``, oldest first: looked for
        a day back, then further (an open search reads every older day on PostgreSQL)."""
        return look_back(
            lambda since: self.history_reads.readings_before(
                sensor_id, ts, limit, self._from(sensor_id, since)
            ),
            limit,
            ts,
        )

    def buckets(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[Bucket]:
        """Per bucket of ``bucket`` seconds (aligned to the epoch), oldest first, at most
        ``limit``: from the rollup tiers where they cover it whole, raw readings elsewhere."""
        return self.history_rollups.buckets(sensor_id, start, end, bucket, limit)

    def history_span(self, sensor_id: int) -> tuple[float, float] | None:
        """(first, last) ts of everything stored for a sensor, any tier; None: nothing."""
        return self.history_rollups.history_span(sensor_id)

    def tier_usage(self) -> list[TierUsage]:
        """What each tier holds now (counts every row: for the periodic job, not per request)."""
        return self.rollups.tier_usage()

    def tier_status(self) -> list[dict[str, Any]]:
        """The last recorded measurements: tier, rows, bytes, oldest, next_expiry, measured_at."""
        return self.rollups.tier_status()

    def read_lag(self) -> float | None:
        """The read database's replication lag now (seconds); None: no read database is
        set, or it does not answer."""
        return None

    def anomaly_scan(self, sensor_id: int) -> dict[str, Any] | None:
        return self.reports.anomaly_scan(sensor_id)

    def stored_anomalies(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` stored anomalies of a sensor, oldest first."""
        return self.reports.stored_anomalies(sensor_id, limit)

    def edge_alerts(self, sensor_id: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts the edge raised for a sensor, newest first."""
        return self.alerts.edge_alerts(sensor_id, limit)

    def list_rules(self, sensor_id: int) -> list[dict[str, Any]]:
        return self.rules.list_rules(sensor_id)

    def get_rule(self, rule_id: int) -> dict[str, Any] | None:
        return self.rules.get_rule(rule_id)

    def list_alerts(
        self, where: AlertFilter, offset: int, limit: int, at: float | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """(a page of the fleet's alerts, newest first; how many match in all)."""
        return self.alerts.list_alerts(where, offset, limit, at)

    def get_alert(self, alert_id: int) -> dict[str, Any] | None:
        return self.alerts.get_alert(alert_id)

    def alert_journal(self, alert_id: int) -> list[dict[str, Any]]:
        return self.alerts.alert_journal(alert_id)

    def journal_page(
        self, alert_id: int, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """(``limit`` journal entries of an alert from ``offset``, oldest first; how many)."""
        return self.alerts.journal_page(alert_id, offset, limit)

    def journal_tail(self, alert_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(an alert's newest ``limit`` journal entries, oldest first; how many in all)."""
        return self.alerts.journal_tail(alert_id, limit)

    def stale_sensors(self, sensor_ids: Iterable[int]) -> set[int]:
        return self.offline.stale_sensors(sensor_ids)

    # ``factories``: only rows of these factories (a scoped caller's list); None: all.
    def gateways_page(
        self, offset: int, limit: int, factories: Collection[int] | None = None
    ) -> Page:
        return self.catalog.gateways_page(offset, limit, factories)

    def factories_page(
        self, offset: int, limit: int, factories: Collection[int] | None = None
    ) -> Page:
        return self.catalog.factories_page(offset, limit, factories)

    def machines_page(
        self,
        factory_id: int | None,
        offset: int,
        limit: int,
        factories: Collection[int] | None = None,
    ) -> Page:
        return self.catalog.machines_page(factory_id, offset, limit, factories)

    def sensors_page(
        self,
        offset: int,
        limit: int,
        *,
        machine_id: int | None = None,
        key: str | None = None,
        factory_id: int | None = None,
        factories: Collection[int] | None = None,
    ) -> Page:
        return self.catalog.sensors_page(
            offset,
            limit,
            machine_id=machine_id,
            key=key,
            factory_id=factory_id,
            factories=factories,
        )

    def get_factory(self, factory_id: int) -> dict[str, Any] | None:
        return self.catalog.get_factory(factory_id)

    def get_machine(self, machine_id: int) -> dict[str, Any] | None:
        return self.catalog.get_machine(machine_id)

    def machines_named(self, line: str, name: str) -> list[dict[str, Any]]:
        """Every machine on ``line`` called ``name``, whatever its factory."""
        return self.catalog.machines_named(line, name)

    def rolling_readings(
        self, sensor_id: int, start: float | None, end: float | None, limit: int, window: int
    ) -> list[RollingRow]:
        return self.history_reports.rolling_readings(sensor_id, start, end, limit, window)

    def factory_alert_intervals(
        self, factory_id: int, start: float | None, end: float | None
    ) -> list[dict[str, Any]]:
        return self.history_reports.factory_alert_intervals(factory_id, start, end)

    def alarm_history(
        self,
        start: float,
        end: float,
        factory_id: int | None,
        *,
        stale_after_s: float,
        shelves_since: float,
        limit: int,
        factories: Collection[int] | None = None,
    ) -> AlarmHistory:
        """What the alarm KPI report is computed from (hub.storage.alarm_report)."""
        return self.alarm_report.history(
            start,
            end,
            factory_id,
            stale_after_s=stale_after_s,
            shelves_since=shelves_since,
            limit=limit,
            factories=factories,
        )

    def alarm_source_names(
        self, sensor_ids: Collection[int], gateway_ids: Collection[int]
    ) -> tuple[dict[int, str], dict[int, str]]:
        """(sensor id -> key, gateway row id -> name)."""
        return self.alarm_report.source_names(sensor_ids, gateway_ids)

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
        factories: Collection[int] | None = None,
    ) -> Page:
        return self.audit.audit_page(
            offset,
            limit,
            target=target,
            target_id=target_id,
            token_id=token_id,
            start=start,
            end=end,
            factories=factories,
        )

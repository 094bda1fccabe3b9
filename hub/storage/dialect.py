"""What differs between the engines, in one object per engine (sqlite/dialect.py,
postgres/dialect.py), after Django's ``db.backends`` ``ops``/``features``/``introspection``:
SQL fragments, how readings go in, scan queueing, table sizes, locking clauses, the
driver's integrity errors, the partitions hook, catalog introspection for copy-data, and
which hub process runs a periodic job.

The base class holds the portable way where there is one; an engine overrides what it does
better or differently. Concerns (ingest, rollups, catalog...) hold a dialect and never ask
which engine runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from hub.storage.model import GatewayReport, ReadingRow
from hub.storage.sqlbase import Conn, Database, expire_rows, oldest_in

T = TypeVar("T")


class Fold(Protocol):
    """What the insert of readings needs of the rollups (hub.storage.rollups.Rollups)."""

    @property
    def maintain(self) -> bool: ...

    def fold(self, conn: Conn, rows: Sequence[ReadingRow]) -> None: ...


@dataclass(frozen=True, slots=True)
class UsualBatch:
    """A usual batch stored at once (:meth:`Dialect.store_usual`): ``accepted`` readings,
    all of the batch's, and the factory's rules version."""

    accepted: int
    config_version: int


class Dialect(ABC):
    # The start of ts's bucket of width ?, with the width given twice.
    bucket_start: ClassVar[str]
    # The start of a tier row's answer bucket of a whole width ? (given twice, as an int).
    # Tier buckets are whole multiples of 60 and a width a tier answers is a whole multiple
    # of the tier's, so integer division is exact here; on SQLite it is twice as fast as the
    # REAL division and CAST (a year of hours, 8,760 rows per chart).
    tier_bucket_start: ClassVar[str]
    # Appended to the SELECT with which a sensor's deletion starts, to take the row lock that
    # lock_sensors waits for (PostgreSQL); SQLite's one writer already excludes the rest.
    lock_for_delete: ClassVar[str] = ""
    # Whether store_usual can store a batch in one go (else ingest skips building its rows).
    stores_usual: ClassVar[bool] = False
    # The driver's errors for a broken UNIQUE/CHECK/foreign key constraint.
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- readings in -----------------------------------------------------------------------

    @abstractmethod
    def insert_readings(self, conn: Conn, rows: list[ReadingRow], rollups: Fold) -> int:
        """Insert rows, skipping ids already stored, and fold the new ones into the rollups
        (when maintained) in the same transaction; returns how many were new."""

    def store_usual(
        self,
        gateway_id: int,
        factory_id: int,
        rows: list[ReadingRow],
        sensor_ids: Sequence[int],
        report: GatewayReport,
        token_id: int | None,
        rollups: Fold,
    ) -> UsualBatch | None:
        """Store a usual batch (every sensor known, no edge alert; ``sensor_ids`` sorted) in
        one go, its own transaction: sensors locked, readings, rollups, scan queue, gateway
        report. None, with nothing written, when the engine has no such way or the batch is
        not usual after all (a reading stored before, a sensor deleted, the token revoked,
        an alert to clear or raise); the caller then stores it step by step."""
        return None

    def guard_batch(self, store: Callable[[], T], times: Callable[[], Sequence[float]]) -> T:
        """Run ``store`` (a whole batch's transaction), retried the engine's way when the
        engine can tell that a retry stores it (``times``: the batch's reading times)."""
        return store()

    def before_readings(self, ts_values: Sequence[float]) -> None:
        """Make storage ready for readings at these times (PostgreSQL: their partitions)."""
        return None

    def lock_sensors(self, conn: Conn, sensor_ids: Sequence[int]) -> set[int]:
        """Inside a write transaction that stores rows for ``sensor_ids``: which of them
        exist, each held until the commit so that no deletion of it can run in between
        (rows written for a sensor deleted meanwhile would outlive it, unseen by any read).
        SQLite needs no lock for that: its one writer at a time is this transaction."""
        found: set[int] = set()
        for i in range(0, len(sensor_ids), 500):
            part = list(sensor_ids[i : i + 500])
            marks = ", ".join("?" * len(part))
            rows = conn.execute(f"SELECT id FROM sensors WHERE id IN ({marks})", part)
            found.update(int(r[0]) for r in rows.fetchall())
        return found

    def hold_alarms(self, conn: Conn, sensor_ids: Collection[int]) -> None:
        """Inside a write transaction that may open an alarm for any of ``sensor_ids``: each
        held until the commit, so that no other transaction finds a sensor without an active
        alarm and opens one in between (one alarm per sensor). SQLite needs nothing for
        that: its one writer at a time is this transaction."""
        return None

    def queue_scans(self, conn: Conn, sensor_ids: Sequence[int]) -> None:
        """Queue ``sensor_ids`` for the anomaly scan in ``conn``'s transaction; a sensor
        queued already costs an index probe (DO NOTHING takes no lock). In the order given:
        callers pass them sorted, so concurrent transactions lock alike. In-process SQLite
        runs one prepared statement per sensor."""
        conn.executemany(
            "INSERT INTO scan_queue (sensor_id) VALUES (?) ON CONFLICT DO NOTHING",
            [(s,) for s in sensor_ids],
        )

    @abstractmethod
    def is_unique_violation(self, exc: BaseException) -> bool:
        """A UNIQUE constraint refused the write (not NOT NULL, CHECK or a foreign key)."""

    # -- retention and tier usage --------------------------------------------------------

    def expire_raw(self, cutoff: float, max_rows: int) -> int:
        """One bounded step of raw retention: at most ``max_rows`` readings older than
        ``cutoff`` go; 0 when none is left."""
        return expire_rows(self.db, "readings", "ts", "id", "<", cutoff, max_rows)

    def oldest_raw(self, conn: Conn) -> float | None:
        return oldest_in(conn, "readings", "ts")

    @abstractmethod
    def table_bytes(self, conn: Conn, table: str) -> int | None:
        """Bytes a table takes with its indexes, where the engine can tell."""

    @contextmanager
    def exclusive_job(self, name: str) -> Iterator[bool]:
        """A periodic job's round in one hub process only (see Storage.exclusive_job)."""
        yield True

    @abstractmethod
    def try_lead(self, job: str) -> bool: ...

    @abstractmethod
    def release_leads(self) -> None: ...

    # -- the catalog, for copy-data ------------------------------------------------------

    @abstractmethod
    def table_columns(self) -> dict[str, list[str]]:
        """Every table of the hub's schema (none of the engine's own) and its columns."""

    @abstractmethod
    def primary_key(self, table: str) -> list[str]: ...

    def converters(self, table: str) -> dict[str, Callable[[Any], Any]]:
        """Per column, how a value read from another engine is stored here (0/1 -> bool)."""
        return {}

    def after_copy(self) -> None:
        """Rows arrived with their ids: let new rows get ids after them."""
        return None

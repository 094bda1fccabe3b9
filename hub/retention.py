"""Retention per tier (hub.toml ``[retention]``): the periodic job that expires old data.

Each tier keeps its own depth: raw readings ``raw_days`` (90), 1-minute rollups
``minute_days`` (730), 1-hour and 12-hour rollups ``hour_days`` (0: forever). Rollups are built as
batches arrive (hub.storage.rollups), so expiring raw readings never changes a chart or a
stat over the expired range: those are answered by the tiers that still hold it.

The job never holds up ingest. On SQLite each step deletes at most ``batch_rows`` rows in
its own short write transaction and the job pauses ``pause_s`` between steps, so batches
queue behind one small delete at a time, not behind a purge; on PostgreSQL a step of raw
retention drops one day partition (detached concurrently), and rollups go by the same
bounded steps as on SQLite.

One hub process runs it: on PostgreSQL the round holds a session advisory lock
(``pg_try_advisory_lock``); a process that does not get it skips the round. On SQLite the
hub is one process; two rounds at once would only do the same bounded deletes twice.
After each round the job measures each tier (rows, bytes, oldest row) and stores the figures
with the next expiry; /metrics reads them in whichever process answers (hub.metrics).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub import metrics
from hub.background import BackgroundJob
from hub.storage import Storage
from hub.storage.interface import TierUsage

log = structlog.get_logger("hub.retention")

DAY_S = 86400.0


class RetentionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Days each tier keeps; 0 keeps it forever.
    raw_days: float = Field(90, ge=0, le=100 * 365, allow_inf_nan=False)
    minute_days: float = Field(730, ge=0, le=100 * 365, allow_inf_nan=False)
    hour_days: float = Field(0, ge=0, le=100 * 365, allow_inf_nan=False)
    # How often a round runs (0: never; the tiers are still measured at start).
    interval_s: float = Field(3600.0, ge=0, allow_inf_nan=False)
    # Rows one delete transaction removes at most, and the pause between two of them.
    batch_rows: int = Field(5000, ge=1, le=1_000_000)
    pause_s: float = Field(0.05, ge=0, le=60, allow_inf_nan=False)

    @model_validator(mode="after")
    def _coarser_keeps_longer(self) -> RetentionSettings:
        # Each tier answers for the finer ones once they expire (charts, stats, latest, the
        # span of points=): a coarser tier must keep at least as long (0 = forever).
        pairs = (("raw_days", "minute_days"), ("minute_days", "hour_days"))
        for finer, coarser in pairs:
            f, c = getattr(self, finer), getattr(self, coarser)
            if c != 0 and (f == 0 or c < f):
                raise ValueError(
                    f"{coarser} ({c:g}) must be 0 (forever) or at least {finer} "
                    f"({'0, forever' if f == 0 else f'{f:g}'}): coarser tiers keep longer"
                )
        return self

    def days(self) -> dict[str, float]:
        # hour_days covers both hour tiers: the 12-hour one only speeds up long charts.
        hours = self.hour_days
        return {"raw": self.raw_days, "1m": self.minute_days, "1h": hours, "12h": hours}


class RetentionJob(BackgroundJob):
    name = "retention"

    def __init__(
        self,
        storage: Storage,
        settings: RetentionSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.settings = settings
        super().__init__()
        self.clock = clock

    def run_once(self) -> dict[str, int] | None:
        """One round: expire every tier past its depth, then measure. Returns rows removed
        per tier, or None when another hub process holds the round."""
        with self.storage.exclusive_job("retention") as mine:
            if not mine:
                return None
            removed = {
                tier: self._expire(tier, days) for tier, days in self.settings.days().items()
            }
            self.measure()
        if any(removed.values()):
            log.info("retention round", **{f"{k}_removed": v for k, v in removed.items()})
        return removed

    def _expire(self, tier: str, days: float) -> int:
        if days <= 0:
            return 0
        total = 0
        while not self._stop.is_set():
            cutoff = self.clock() - days * DAY_S
            n = self.storage.expire(tier, cutoff, self.settings.batch_rows)
            total += n
            if n == 0:
                break
            # Let queued ingest batches take the write lock between two steps.
            self._stop.wait(self.settings.pause_s)
        return total

    def measure(self) -> list[TierUsage]:
        usage = self.storage.tier_usage()
        days = self.settings.days()
        rows = [
            (u, None if days[u.tier] <= 0 or u.oldest is None else u.oldest + days[u.tier] * DAY_S)
            for u in usage
        ]
        self.storage.record_tier_status(rows, self.clock())
        return usage

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.settings.interval_s > 0:
                    self.run_once()
                else:
                    self.measure()
            except Exception:
                log.exception("retention round failed")
            if self.settings.interval_s <= 0:
                return
            self._stop.wait(self.settings.interval_s)


def publish(storage: Storage) -> None:
    """Set the tier gauges of /metrics from the figures the job last recorded (a failing
    database leaves them as they were: /metrics itself must keep answering)."""
    try:
        status = storage.tier_status()
    except Exception as exc:
        log.warning("storage per tier not readable for /metrics", error=str(exc))
        return
    for row in status:
        tier = str(row["tier"])
        metrics.TIER_ROWS.labels(tier).set(row["rows"])
        for gauge, value in (
            (metrics.TIER_BYTES, row["bytes"]),
            (metrics.TIER_OLDEST, row["oldest"]),
            (metrics.TIER_NEXT_EXPIRY, row["next_expiry"]),
        ):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(tier)
            else:
                gauge.labels(tier).set(value)
        metrics.TIER_MEASURED.set(row["measured_at"])

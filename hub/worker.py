"""The background anomaly scan: a daemon thread that runs detection on recently active sensors.

Every ``anomaly_scan_interval_s`` it takes the sensors that received readings since their
last scan off the database's scan queue (every stored batch queues its sensors in its own
transaction, so a backlog drained with old timestamps counts as new, and what any hub
process stored is seen), runs the detector over each one's last ``anomaly_scan_limit``
readings and stores the findings; ``GET /sensors/:id/anomalies?stored=true`` answers from
them, with the detector up or not.

With ``workers > 1`` one hub process scans: the one holding the ``anomaly-scan`` lead
(Storage.try_lead: an advisory lock on PostgreSQL, an flock beside the SQLite file); the
others' rounds do nothing, and one of them takes over if the leader dies.

A dead detector costs one failed call per round at most: once the client's breaker opens,
the round stops and the sensors not scanned go back on the queue for the next round.
"""

from __future__ import annotations

import structlog

from hub import metrics
from hub.anomaly import (
    AnomalyClient,
    DetectorRejected,
    DetectorUnavailable,
    Method,
    found_anomalies,
)
from hub.background import PeriodicJob
from hub.storage import Storage

log = structlog.get_logger("hub.worker")

SCAN_JOB = "anomaly-scan"
# Sensors taken off the queue at a time: a stop or a dead detector puts back at most these.
SCAN_CHUNK = 100


class AnomalyScanner(PeriodicJob):
    name = SCAN_JOB

    def __init__(
        self,
        storage: Storage,
        client: AnomalyClient,
        *,
        interval_s: float,
        limit: int,
        threshold: float,
        method: Method,
    ) -> None:
        super().__init__()
        self.storage = storage
        self.client = client
        self.interval_s = interval_s
        self.limit = limit
        self.threshold = threshold
        self.method = method

    def scan_once(self) -> int:
        """One round; returns how many sensors were scanned (0 when another hub process
        leads the scan: with workers > 1 it runs in one of them)."""
        if not self.storage.try_lead(SCAN_JOB):
            return 0
        scanned = 0
        while not self._stop.is_set():
            sensors = self.storage.take_scan_queue(SCAN_CHUNK)
            if not sensors:
                break
            for i, sensor_id in enumerate(sensors):
                if self._stop.is_set():
                    self.storage.requeue_scans(sensors[i:])
                    return scanned
                rows = self.storage.last_readings(sensor_id, self.limit)
                if not rows:
                    continue
                try:
                    detection = self.client.detect(
                        [value for _, _, value in rows], self.threshold, self.method
                    )
                except DetectorUnavailable as exc:
                    metrics.ANOMALY_SCANS.labels("unavailable").inc()
                    log.info("anomaly scan postponed: detector unavailable", reason=str(exc))
                    # These sensors are due again next round.
                    self.storage.requeue_scans(sensors[i:])
                    return scanned
                except DetectorRejected as exc:
                    metrics.ANOMALY_SCANS.labels("rejected").inc()
                    log.error(
                        "anomaly-detector refused a scan", sensor_id=sensor_id, error=str(exc)
                    )
                    continue
                new = self.storage.store_anomaly_scan(
                    sensor_id,
                    self.method,
                    self.threshold,
                    len(rows),
                    detection.statistics_dict(),
                    found_anomalies(rows, detection),
                )
                metrics.ANOMALY_SCANS.labels("ok").inc()
                metrics.ANOMALIES_STORED.inc(new)
                scanned += 1
        return scanned

    def round(self) -> int:
        return self.scan_once()


class AlertWatch(PeriodicJob):
    """Every ``interval_s``: opens one gateway_offline alert per gateway silent for
    ``offline_after_s`` (and clears those seen again), journals shelves that ran out, and
    marks alerts active longer than ``[alarms] stale_after_s`` stale.
    Several hub processes may run it: storage opens each offline alert once (a partial unique
    index), and a cleared or expired row is changed by whichever process gets there first."""

    name = "alert-watch"

    def __init__(self, storage: Storage, *, offline_after_s: float, interval_s: float) -> None:
        super().__init__()
        self.storage = storage
        self.offline_after_s = offline_after_s
        self.interval_s = interval_s

    def check_once(self) -> dict[str, int]:
        found = self.storage.evaluate_gateways(self.offline_after_s)
        found["shelves_expired"] = self.storage.expire_shelves()
        found["stale"] = self.storage.alerts.mark_stale()
        if found["opened"] or found["cleared"]:
            log.info("gateway offline alerts", **found)
        return found

    def round(self) -> dict[str, int]:
        return self.check_once()

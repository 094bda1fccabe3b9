"""The background anomaly scan: a daemon thread that runs detection on recently active sensors.

Every ``anomaly_scan_interval_s`` it asks storage which sensors received readings since the
previous round (by ingest generation: a counter of the batches this process stored, so a
backlog drained with old timestamps still counts as new), runs the detector over each one's
last ``anomaly_scan_limit`` readings and stores the findings;
``GET /sensors/:id/anomalies?stored=true`` answers from them, with the detector up or not.
The first round after a start looks at every sensor.

A dead detector costs one failed call per round at most: once the client's breaker opens,
the round stops and the same sensors are tried again next round (the watermark advances
only past what was scanned).
"""

from __future__ import annotations

import threading

import structlog

from hub import metrics
from hub.anomaly import (
    AnomalyClient,
    DetectorRejected,
    DetectorUnavailable,
    Method,
    found_anomalies,
)
from hub.storage import Storage

log = structlog.get_logger("hub.worker")


class AnomalyScanner:
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
        self.storage = storage
        self.client = client
        self.interval_s = interval_s
        self.limit = limit
        self.threshold = threshold
        self.method = method
        self.watermark = 0  # batches up to this ingest generation have been considered
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan_once(self) -> int:
        """One round; returns how many sensors were scanned."""
        top = self.storage.ingest_watermark()
        sensors = self.storage.sensors_with_new_readings(self.watermark)
        scanned = 0
        for sensor_id in sensors:
            if self._stop.is_set():
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
                return scanned  # watermark stays: these sensors are due again next round
            except DetectorRejected as exc:
                metrics.ANOMALY_SCANS.labels("rejected").inc()
                log.error("anomaly-detector refused a scan", sensor_id=sensor_id, error=str(exc))
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
        self.watermark = top
        return scanned

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:
                log.exception("anomaly scan failed")
            self._stop.wait(self.interval_s)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="anomaly-scan", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class AlertWatch:
    """Every ``interval_s``: opens one gateway_offline alert per gateway silent for
    ``offline_after_s`` (and clears those seen again), and journals shelves that ran out.
    Several hub processes may run it: storage opens each offline alert once (a partial unique
    index), and a cleared or expired row is changed by whichever process gets there first."""

    def __init__(self, storage: Storage, *, offline_after_s: float, interval_s: float) -> None:
        self.storage = storage
        self.offline_after_s = offline_after_s
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> dict[str, int]:
        found = self.storage.evaluate_gateways(self.offline_after_s)
        found["shelves_expired"] = self.storage.expire_shelves()
        if found["opened"] or found["cleared"]:
            log.info("gateway offline alerts", **found)
        return found

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:
                log.exception("alert watch failed")
            self._stop.wait(self.interval_s)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="alert-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

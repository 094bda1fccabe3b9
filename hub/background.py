"""The hub's background jobs: each runs in one daemon thread until :meth:`stop`.

The anomaly scan, the alert watch, the webhook sender and retention share this lifecycle;
what they do each round is their own. A round that raises is logged and the job goes on:
a failing database or a bad row must not end a job for the life of the process.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import structlog

from hub.storage.model import DatabaseUnavailable

log = structlog.get_logger("hub.background")


class BackgroundJob(ABC):
    """A thread named :attr:`name` running :meth:`run`; :attr:`_stop` tells it to end."""

    name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def run(self) -> None:
        """The job's loop: return once ``self._stop`` is set."""

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class PeriodicJob(BackgroundJob):
    """A job that does one round, then waits :attr:`interval_s` (or until stopped)."""

    interval_s: float

    @abstractmethod
    def round(self) -> object:
        """One round of the job's work."""

    def run(self) -> None:
        # A database outage (a failover takes seconds) is said once, in one line, and again
        # when it is over: a traceback every round would bury the log while nothing is wrong
        # with the job itself.
        waiting = False
        while not self._stop.is_set():
            try:
                self.round()
            except DatabaseUnavailable as exc:
                if not waiting:
                    log.warning(
                        "background round waits for the database",
                        job=self.name,
                        reason=str(exc),
                        hosts=exc.hosts,
                    )
                waiting = True
            except Exception:
                log.exception("background round failed", job=self.name)
            else:
                if waiting:
                    log.info("background round has its database back", job=self.name)
                waiting = False
            self._stop.wait(self.interval_s)

"""A periodic job through a database outage: one line when it starts, one when it ends."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from hub.background import PeriodicJob
from hub.storage.model import DatabaseUnavailable


class Flaky(PeriodicJob):
    """Fails ``outage`` rounds as if no primary answered, then succeeds twice."""

    name = "flaky"
    interval_s = 0.0

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage
        self.rounds = 0
        self.done = threading.Event()

    def round(self) -> None:
        self.rounds += 1
        if self.rounds <= self.outage:
            raise DatabaseUnavailable("no writable host", ["pg-a:5432", "pg-b:5432"])
        if self.rounds >= self.outage + 2:
            self._stop.set()
            self.done.set()


def test_an_outage_is_one_warning_and_one_recovery_not_a_traceback_a_round() -> None:
    job = Flaky(outage=5)
    with capture_logs() as logs:
        job.start()
        assert job.done.wait(10)
        job.stop(10)
    mine = [e for e in logs if e.get("job") == "flaky"]
    assert [e["log_level"] for e in mine] == ["warning", "info"], mine
    assert mine[0]["hosts"] == ["pg-a:5432", "pg-b:5432"]
    assert "exc_info" not in mine[0]


def test_any_other_failure_is_still_logged_with_its_traceback_each_round() -> None:
    class Broken(Flaky):
        def round(self) -> None:
            self.rounds += 1
            if self.rounds == 3:
                self._stop.set()
                self.done.set()
            raise ValueError("a bad row")

    job = Broken(outage=0)
    with capture_logs() as logs:
        job.start()
        assert job.done.wait(10)
        job.stop(10)
    failed = [e for e in logs if e.get("job") == "flaky" and e["log_level"] == "error"]
    assert len(failed) == 3 and all(e.get("exc_info") for e in failed)

"""Exactly-once through real faults (docs/reliability.md, invariants 1 and 2; issue 5).

Real mosquitto, hub and agent processes; sensors publish at QoS 1 throughout each scenario and
afterwards every sensor's readings at the hub are compared with what the broker acknowledged,
by count and by content: 0 lost, 0 doubled.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections import Counter
from functools import partial
from typing import Any

import psutil
import pytest

from devtools.stack import wait_for

from .conftest import Faults

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _connected(f: Faults) -> bool:
    assert f.agent is not None
    return bool(f.agent.status()["mqtt"]["connected"])


def test_hub_killed_mid_sync_and_restarted(faults: Faults) -> None:
    faults.make_agent().start()
    faults.publish(rate=400)
    rng = random.Random(5)
    for _ in range(3):
        # A backlog builds while the hub is gone, so the next kill lands in its drain.
        faults.hub.proc.kill()
        time.sleep(rng.uniform(0.8, 1.5))
        faults.hub.start()
        time.sleep(rng.uniform(0.05, 0.5))
    faults.hub.proc.kill()
    time.sleep(0.5)
    faults.hub.start()
    time.sleep(1.0)
    assert faults.sensors is not None
    faults.sensors.stop()
    faults.assert_exactly_once()


def _hub_family(f: Faults) -> list[psutil.Process]:
    assert f.hub.proc.popen is not None
    top = psutil.Process(f.hub.proc.popen.pid)
    return [top, *top.children(recursive=True)]


def test_hub_workers_killed_mid_sync_on_postgresql(faults_pg_workers: Faults) -> None:
    """Invariant 1 with the hub on PostgreSQL and ``workers = 2``: the whole hub (supervisor
    and both workers) SIGKILLed mid-drain, as a power cut of the hub box would, and one worker
    SIGKILLed alone (the supervisor then stops the other and exits 1, as under systemd's
    Restart=). Every reading still arrives once."""
    f = faults_pg_workers
    f.make_agent().start()
    f.publish(rate=400)
    rng = random.Random(7)
    for _ in range(3):
        family = _hub_family(f)
        assert len(family) == 3, family  # supervisor + 2 workers
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(family, timeout=10)
        time.sleep(rng.uniform(0.8, 1.5))  # a backlog builds while the hub is gone
        f.hub.start()
        time.sleep(rng.uniform(0.05, 0.5))  # chaos timing: the next kill lands mid-drain
    worker = _hub_family(f)[1]
    worker.kill()
    assert f.hub.proc.popen is not None
    assert f.hub.proc.popen.wait(60) == 1  # one worker died: the hub stops as a whole
    f.hub.start()
    time.sleep(1.0)
    assert f.sensors is not None
    f.sensors.stop()
    f.assert_exactly_once()


def test_link_stalls_then_recovers(faults: Faults) -> None:
    agent = faults.make_agent(via_proxy=True).start()
    proxy = faults.proxy
    assert proxy is not None
    sensors = faults.publish(rate=400)

    def synced() -> bool:
        return bool((agent.status()["last_sync"] or {}).get("result") == "ok")

    status: dict[str, Any] = {}

    def stalled_past(at_least: float) -> bool:
        # Waited on, not slept: how soon the agent notices depends on the machine.
        status.update(agent.status())
        error = (status["last_sync_error"] or "").lower()
        return "timeout" in error and (status["oldest_unsynced_age_s"] or 0.0) >= at_least

    wait_for("a first sync", synced, timeout=60)
    for stall_s in (4.0, 2.5):  # longer than the agent's 2 s request timeout
        proxy.set_mode("stall")
        wait_for(f"a {stall_s} s stall the agent timed out in", partial(stalled_past, stall_s), 60)
        assert status["backlog"] > 0, status
        proxy.set_mode("pass")  # requests held during the stall now reach the hub, late
        wait_for("a sync after the stall", synced, timeout=60)
    sensors.stop()
    faults.assert_exactly_once()


def test_link_resets_mid_request_and_answers_are_lost(faults: Faults) -> None:
    faults.make_agent(via_proxy=True).start()
    proxy = faults.proxy
    assert proxy is not None
    sensors = faults.publish(rate=400)
    rng = random.Random(7)
    time.sleep(0.5)
    for i in range(8):
        proxy.set_mode("drop_response" if i % 2 else "reset")
        time.sleep(rng.uniform(0.3, 0.8))
        proxy.set_mode("pass")
        time.sleep(rng.uniform(0.3, 0.8))
    sensors.stop()
    faults.assert_exactly_once()
    # The faults really happened: requests cut off, and batches the hub stored whose answer
    # never reached the agent (it sent them again; the hub kept them once).
    assert proxy.resets > 0
    assert proxy.dropped_responses > 0


def test_agent_killed_at_random_moments(faults: Faults) -> None:
    agent = faults.make_agent().start()  # the persistent session exists from here on
    faults.publish(rate=400)
    rng = random.Random(11)
    kills = 0
    for _ in range(22):
        time.sleep(rng.uniform(0.0, 1.0))
        kills += agent.proc.running
        agent.proc.kill()
        # The next kill lands anywhere from start-up (about 1 s of imports here) through the
        # catch-up on what the broker queued meanwhile, to steady ingest + sync.
        agent.start(wait_subscribed=False)
        time.sleep(0.8)
    assert kills >= 20
    wait_for("the agent to reconnect", lambda: _connected(faults), timeout=30, every=0.2)
    time.sleep(1.0)
    assert faults.sensors is not None
    faults.sensors.stop()
    faults.assert_exactly_once(timeout=90)


def test_broker_and_agent_restarts_keep_every_reading(faults: Faults) -> None:
    agent = faults.make_agent().start()
    sensors = faults.publish(rate=300)
    time.sleep(1.0)
    # The broker restarts under a running agent (persistence on; sensors reconnect).
    sensors.pause()
    faults.broker.stop()
    faults.broker.start()
    sensors.resume()
    wait_for("the agent to reconnect", lambda: _connected(faults), timeout=30, every=0.2)
    time.sleep(1.0)
    # The agent stops cleanly and the broker queues for its persistent session ...
    assert agent.stop() == 0
    time.sleep(1.5)
    agent.start()
    time.sleep(1.0)
    # ... is killed and the broker queues again ...
    agent.proc.kill()
    time.sleep(1.0)
    # ... and the broker restarts while holding that queue.
    sensors.pause()
    faults.broker.stop()
    faults.broker.start()
    sensors.resume()
    time.sleep(1.0)
    agent.start()
    time.sleep(1.0)
    sensors.stop()
    faults.assert_exactly_once()


class _DiskSampler:
    """The buffer file plus its WAL, sampled every few ms from another thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.samples: list[int] = []
        # (file, wal) at the largest sample: says which of the two went over.
        self.peak: tuple[int, int] = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _size(self, suffix: str) -> int:
        try:
            return os.stat(self.path + suffix).st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            file, wal = self._size(""), self._size("-wal")
            if file + wal > sum(self.peak):
                self.peak = (file, wal)
            self.samples.append(file + wal)
            time.sleep(0.005)


@pytest.mark.parametrize(
    "when_full",
    [
        "drop_oldest",
        "drop_newest",
    ],
)
def test_disk_budget_reached_with_the_hub_down(faults: Faults, when_full: str) -> None:
    budget = 1_000_000
    faults.hub.stop()
    agent = faults.make_agent(settings={"buffer": {"max_bytes": budget, "when_full": when_full}})
    agent.start()
    with _DiskSampler(str(agent.buffer)) as disk:
        sensors = faults.publish(rate=150, per_message=50)
        wait_for(
            "the buffer to overflow",
            lambda: agent.status()["dropped"] > 10_000,
            timeout=60,
            every=0.5,
        )
        sensors.stop()
        published = sensors.count()
        wait_for(
            "the agent to take every message",
            lambda: _taken(agent.status()) == published,
            timeout=30,
            every=0.3,
        )
        faults.hub.start()
        wait_for("the backlog to drain", lambda: agent.status()["backlog"] == 0, timeout=60)
    assert max(disk.samples) <= budget, (
        f"buffer + WAL reached {max(disk.samples):,} bytes (file, WAL: {disk.peak})"
    )

    stored = faults.hub.readings_by_sensor()
    flat = Counter((ts, v) for rows in stored.values() for ts, v in rows)
    assert max(flat.values()) == 1, "a reading is stored twice"
    in_order = [(ts, v) for _, ts, v in sensors.order]
    kept = len(flat)
    assert set(flat) <= set(in_order)
    if when_full == "drop_oldest":
        # Eviction goes by seq, i.e. arrival order: the hub has exactly the newest readings.
        expected = set(in_order[-kept:])
    else:
        # New readings are refused while full; a few get in later whenever commits free a
        # little room, so only the bulk of what the hub has must be the oldest ones.
        expected = set(in_order[: kept * 95 // 100])
    missing, extra = expected - set(flat), set(flat) - set(in_order[-kept:])
    assert not missing, f"{when_full}: hub has {kept} of {len(in_order)}; missing {_span(missing)}"
    if when_full == "drop_oldest":
        assert not extra, f"hub has {kept} of {len(in_order)}; older ones: {_span(extra)}"
    status = agent.status()
    assert status["dropped"] == published - kept > 0
    with faults.hub.client() as c:
        gateway = c.get("/api/v1/gateways/gw-faults").raise_for_status().json()["data"]
    assert gateway["dropped"] == status["dropped"]


def test_disk_budget_reached_with_block_holds_readings_at_the_broker(faults: Faults) -> None:
    """when_full = block: a full buffer stops acknowledging MQTT, the broker queues for the
    agent's persistent session, and once the hub drains the backlog every reading arrives:
    nothing dropped, nothing doubled, the budget kept throughout."""
    budget = 1_000_000
    faults.hub.stop()
    agent = faults.make_agent(settings={"buffer": {"max_bytes": budget, "when_full": "block"}})
    agent.start()
    with _DiskSampler(str(agent.buffer)) as disk:
        sensors = faults.publish(rate=150, per_message=50)
        wait_for(
            "the broker to hold readings the full buffer cannot take",
            lambda: sensors.count() - agent.status()["backlog"] > 10_000,
            timeout=60,
            every=0.5,
        )
        faults.hub.start()
        time.sleep(2.0)  # still publishing while the backlog drains and the agent takes again
        sensors.stop()
        faults.assert_exactly_once(timeout=90)
    assert max(disk.samples) <= budget, (
        f"buffer + WAL reached {max(disk.samples):,} bytes (file, WAL: {disk.peak})"
    )
    assert agent.status()["dropped"] == 0


def _taken(status: dict[str, Any]) -> int:
    """Readings the agent has dealt with: still buffered, or dropped by the policy."""
    return int(status["backlog"]) + int(status["dropped"])


def _span(readings: set[tuple[float, float]]) -> str:
    values = sorted(v for _, v in readings)
    return f"{values[0]:.0f}..{values[-1]:.0f}" if values else "-"

"""After an outage, through real processes: live readings overtake a large backlog, the first
batch reaches a hub that came back at once, every reading is stored exactly once; and the
timestamp window at both ends.

The figures (drain rate, fresh-data latency) are measured by ``python -m bench --only
backlog``; the time bounds here are generous correctness bounds, not performance targets.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.prefill import prefill, value_of
from devtools.stack import Agent, Broker, Hub, wait_for

from .conftest import Publisher

pytestmark = pytest.mark.integration

BACKLOG = 400_000


def _query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(con.execute(sql, params))
    finally:
        con.close()


def _count(db: Path) -> int:
    try:
        return int(_query(db, "SELECT count(*) FROM readings")[0][0])
    except sqlite3.Error:
        return 0


class Parts:
    def __init__(self, workdir: Path, hub_extra: str = "") -> None:
        self.broker = Broker(workdir).start()
        self.hub = Hub(workdir)
        if hub_extra:
            with open(self.hub.config, "a") as f:
                f.write(hub_extra)
        token = self.hub.add_gateway("gw-01", "plant-1")
        self.agent = Agent(
            workdir,
            gateway_id="gw-01",
            mqtt_port=self.broker.port,
            hub_url=self.hub.url,
            token=token,
        )

    def stop(self) -> None:
        for p in (self.agent, self.hub, self.broker):
            p.proc.stop()

    def logs(self) -> str:
        return "\n".join(p.proc.log_tail() for p in (self.broker, self.hub, self.agent))


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path)
    try:
        yield p
    finally:
        p.stop()


def test_live_readings_overtake_a_backlog_after_the_hub_returns(parts: Parts) -> None:
    hub, agent = parts.hub, parts.agent
    prefill(agent.buffer, BACKLOG)
    agent.start()  # the hub has never been up: everything in the buffer waits
    pub = Publisher(parts.broker.port)
    try:
        for i in range(5):  # stored while the hub is down: part of the backlog
            pub.publish("factory/out/age/x", {"value": float(i)})
        wait_for("outage readings stored", lambda: agent.status()["backlog"] == BACKLOG + 5)
        hub.start()
        up = time.monotonic()
        wait_for("first batch", lambda: _count(hub.db) > 0, timeout=10, every=0.02)
        first_data_s = time.monotonic() - up
        sent: dict[float, float] = {}
        arrived: dict[float, float] = {}
        backlog_left_at_arrival = 0

        def probes_in() -> bool:
            nonlocal backlog_left_at_arrival
            rows = _query(
                hub.db,
                "SELECT r.value FROM readings r JOIN sensors s ON s.id = r.sensor_id"
                " WHERE s.key = 'live/probe/x'",
            )
            for (v,) in rows:
                arrived.setdefault(float(v), time.monotonic())
            if len(arrived) == 10:
                backlog_left_at_arrival = BACKLOG - _count(hub.db)
                return True
            return False

        for i in range(10):
            sent[float(i)] = time.monotonic()
            pub.publish("factory/live/probe/x", {"value": float(i)})
            next_at = sent[float(i)] + 0.1
            while time.monotonic() < next_at:  # watch the hub while publishing
                probes_in()
                time.sleep(0.01)
        wait_for("live probes at the hub", probes_in, timeout=60, every=0.02)
        latency = {v: arrived[v] - sent[v] for v in sent}
        wait_for("backlog drained", lambda: _count(hub.db) >= BACKLOG + 15, timeout=600, every=0.5)
    except BaseException:
        print(parts.logs())
        raise
    finally:
        pub.close()
    # Live first: every probe was stored while most of the backlog was still waiting.
    assert backlog_left_at_arrival > 0, f"probes came after the backlog ({latency})"
    assert max(latency.values()) < 5.0, latency
    assert first_data_s < 5.0
    # Exactly once: every seq once, every prefilled value where it belongs.
    n, distinct, lo, hi = _query(
        hub.db, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM readings"
    )[0]
    assert (n, distinct, lo, hi) == (BACKLOG + 15, BACKLOG + 15, 1, BACKLOG + 15)
    wrong = _query(
        hub.db,
        "SELECT count(*) FROM readings WHERE seq <= ? AND value != 50.0 + ((seq - 1) % 97) / 10.0",
        (BACKLOG,),
    )[0][0]
    assert wrong == 0 and value_of(BACKLOG - 1) == 50.0 + ((BACKLOG - 1) % 97) / 10.0
    wait_for("agent backlog 0", lambda: agent.status()["backlog"] == 0, timeout=30)
    print(json.dumps({"first_data_s": first_data_s, "probe_latency_s": latency}))


def test_timestamps_outside_either_window_go_to_dead_letters(tmp_path: Path) -> None:
    # The hub's window is narrower than the agent's: a reading the agent takes can still be
    # refused by the hub (422 naming its seq) and must end in the agent's dead letters.
    p = Parts(tmp_path, hub_extra="max_past_s = 3600\n")
    try:
        p.hub.start()
        p.agent.start()
        pub = Publisher(p.broker.port)
        now = time.time()
        pub.publish("factory/l1/m1/t", {"value": 1.0, "ts": now})
        pub.publish("factory/l1/m1/t", {"value": 2.0, "ts": now + 3600})  # agent: future
        pub.publish("factory/l1/m1/t", {"value": 3.0, "ts": now - 2 * 86400})  # hub: too old
        pub.publish("factory/l1/m1/t", {"value": 4.0})
        pub.close()
        wait_for("dead letters", lambda: p.agent.status()["dead_letters"] == 2, timeout=20)
        wait_for("backlog 0", lambda: p.agent.status()["backlog"] == 0, timeout=20)
        values = sorted(float(v) for (v,) in _query(p.hub.db, "SELECT value FROM readings"))
        assert values == [1.0, 4.0]
        reasons = [
            str(r) for (r,) in _query(p.agent.buffer, "SELECT reason FROM dead_letters ORDER BY id")
        ]
        assert "max_future_s = 300" in reasons[0] and "ahead of the time received" in reasons[0]
        assert reasons[1].startswith("rejected by hub: ts: ") and "the hub's clock" in reasons[1]
    except BaseException:
        print(p.logs())
        raise
    finally:
        p.stop()

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devtools.prefill import prefill, value_of
from devtools.stack import Agent, Broker, Hub, wait_for
from shared.wire import decode_batch
from tests.faults.proxy import FaultProxy

from .conftest import Publisher

pytestmark = pytest.mark.integration

# The order proofs below do not depend on how fast the backlog drains: a gate (the fault proxy
# in stall mode) holds the agent's request while the test publishes, and the verdict is read
# from the order in which the hub stored the rows, not from wall time.
BACKLOG = 50_000
BATCH = 1_000  # readings per sync batch: the backlog takes BACKLOG / BATCH requests


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
    def __init__(
        self,
        workdir: Path,
        hub_extra: str = "",
        *,
        via_proxy: bool = False,
        agent_settings: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.broker = Broker(workdir).start()
        self.hub = Hub(workdir)
        if hub_extra:
            with open(self.hub.config, "a") as f:
                f.write(hub_extra)
        token = self.hub.add_gateway("gw-01", "plant-1")
        self.proxy = FaultProxy(self.hub.port, record=True).start() if via_proxy else None
        self.agent = Agent(
            workdir,
            gateway_id="gw-01",
            mqtt_port=self.broker.port,
            hub_url=self.proxy.url if self.proxy else self.hub.url,
            token=token,
            settings=agent_settings,
        )

    def stop(self) -> None:
        for p in (self.agent, self.hub, self.broker):
            p.proc.stop()
        if self.proxy is not None:
            self.proxy.stop()

    def logs(self) -> str:
        return "\n".join(p.proc.log_tail() for p in (self.broker, self.hub, self.agent))


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    # timeout_s: a request held at the gate must wait there, not time out (a timeout is a
    # failed attempt, which would move the live floor above the probes).
    p = Parts(
        tmp_path,
        via_proxy=True,
        agent_settings={"hub": {"batch_max_readings": BATCH, "timeout_s": 600}},
    )
    try:
        yield p
    finally:
        p.stop()


def _buffered(buffer: Path, key: str) -> int:
    return int(_query(buffer, "SELECT count(*) FROM readings WHERE key = ?", (key,))[0][0])


def test_live_readings_overtake_a_backlog_after_the_hub_returns(parts: Parts) -> None:
    hub, agent, proxy = parts.hub, parts.agent, parts.proxy
    assert proxy is not None
    prefill(agent.buffer, BACKLOG)
    agent.start()  # the hub has never been up: everything in the buffer waits
    pub = Publisher(parts.broker.port)
    try:
        for i in range(5):  # stored while the hub is down: part of the backlog
            pub.publish("factory/out/age/x", {"value": float(i)})
        wait_for("outage readings stored", lambda: agent.status()["backlog"] == BACKLOG + 5)
        hub.start()
        up = time.monotonic()
        wait_for("first batch", lambda: _count(hub.db) > 0, timeout=60, every=0.02)
        first_data_s = time.monotonic() - up
        # Close the gate: the agent's next request is held on the wire, unanswered. Readings
        # that arrive now are live (above the floor) while nearly all of the backlog waits.
        proxy.set_mode("stall")
        for i in range(10):
            pub.publish("factory/live/probe/x", {"value": float(i)})
        wait_for("probes buffered", lambda: _buffered(agent.buffer, "live/probe/x") == 10)
        stored_at_gate = _count(hub.db)
        proxy.set_mode("pass")
        wait_for("backlog drained", lambda: _count(hub.db) >= BACKLOG + 15, timeout=600, every=0.2)
    except BaseException:
        print(parts.logs())
        raise
    finally:
        pub.close()
    # Live first, read from the requests the hub was sent, in order: the probes went in one of
    # the first batches after the gate opened (the one held there, the one sent beside it and
    # held too, the one read ahead meanwhile, then the probes) while the rest of the backlog
    # waited behind them.
    backlog_before_probes = 0
    for line, headers, body in proxy.requests():
        if not line.startswith(b"POST /api/v1/ingest"):
            continue
        keys = [r.key for r in decode_batch(body, headers.get("content-encoding")).readings]
        if "live/probe/x" in keys:
            break
        backlog_before_probes += len(keys)
    else:
        raise AssertionError("no batch carried the probes")
    assert backlog_before_probes <= stored_at_gate + 3 * BATCH, (
        backlog_before_probes,
        stored_at_gate,
    )
    # A generous correctness bound (the figure itself is a `just bench` row): the first batch
    # reached the hub through retries with backoff_max_s = 1, not after some long wait.
    assert first_data_s < 30.0
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
    print(
        json.dumps({"first_data_s": first_data_s, "backlog_before_probes": backlog_before_probes})
    )


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

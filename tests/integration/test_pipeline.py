"""End to end through real processes: paho publisher -> mosquitto -> edge-agent -> edge-hub."""

from __future__ import annotations

import time

import httpx
import pytest

from devtools.stack import wait_for
from shared.wire import Batch, WireReading, encode_batch

from .conftest import Publisher, Stack

pytestmark = pytest.mark.integration


def _wait_counts(stack: Stack, expected: dict[str, int], timeout: float = 30) -> None:
    last: dict[str, int] = {}

    def done() -> bool:
        nonlocal last
        last = stack.hub.counts_by_sensor()
        return last == expected

    try:
        wait_for("hub counts", done, timeout=timeout, every=0.25)
    except TimeoutError:
        pytest.fail(f"hub has {last}, expected {expected}\n{stack.logs()}")


def test_every_payload_form_arrives_exactly(stack: Stack, publisher: Publisher) -> None:
    publisher.publish("factory/l1/press/temp", {"value": 23.5, "ts": 1732270000.123, "unit": "C"})
    publisher.publish("factory/l1/press/temp", {"value": 24.0, "ts": "2024-11-22T10:06:41Z"})
    publisher.publish("factory/l1/press/temp", {"value": 24.5})
    publisher.publish("factory/l1/press/rpm", [{"value": 1200, "ts": 1732270001}, {"value": 1210}])
    publisher.publish("factory/l2/oven/humidity", 41)
    publisher.publish("factory/l2/oven/humidity", "41.5")
    _wait_counts(stack, {"l1/press/temp": 3, "l1/press/rpm": 2, "l2/oven/humidity": 2})

    readings = stack.hub.readings_by_sensor()
    assert (1732270000.123, 23.5) in readings["l1/press/temp"]
    assert (1732270001.0, 24.0) in readings["l1/press/temp"]
    assert [v for _, v in readings["l2/oven/humidity"]] == [41.0, 41.5]
    status = stack.agent.status()
    assert status["dead_letters"] == 0
    wait_for("backlog 0", lambda: stack.agent.status()["backlog"] == 0, timeout=10)


def test_bad_payloads_go_to_dead_letters_and_nothing_else(
    stack: Stack, publisher: Publisher
) -> None:
    bad = [
        ("factory/l1/press/temp", b"{not json"),
        ("factory/l1/press/temp", b"NaN"),
        ("factory/l1/press/temp", b'{"value": "hot"}'),
        ("factory/l1/press/temp", b'[{"value": 1}, {"value": "x"}]'),
        ("factory/l1/press", b"12"),  # does not fit the topic template
        ("factory/l1/press/temp", b"x" * 100_000),  # oversize
    ]
    for topic, payload in bad:
        publisher.publish(topic, payload)
    publisher.publish("factory/l1/press/temp", 20.0)  # the flow goes on after bad input
    _wait_counts(stack, {"l1/press/temp": 1})
    wait_for("dead letters", lambda: stack.agent.status()["dead_letters"] == len(bad), timeout=10)
    assert stack.agent.proc.running


def test_same_batch_posted_twice_is_stored_once(stack: Stack) -> None:
    t0 = time.time() - 100
    batch = Batch(
        gateway_id="gw-01",
        readings=[
            WireReading(10_000_000 + i, "lx/mx/sx", t0 + i, float(i), None) for i in range(50)
        ],
    )
    headers = {
        "Authorization": f"Bearer {stack.gateway_token}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }
    body = encode_batch(batch)
    first = httpx.post(f"{stack.hub.url}/api/v1/ingest", content=body, headers=headers)
    second = httpx.post(f"{stack.hub.url}/api/v1/ingest", content=body, headers=headers)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["data"]["accepted"] == 50
    assert second.json()["data"] == {**second.json()["data"], "accepted": 0, "duplicates": 50}
    assert stack.hub.counts_by_sensor()["lx/mx/sx"] == 50


def test_hub_down_for_a_while_then_everything_arrives(stack: Stack, publisher: Publisher) -> None:
    stack.hub.stop()
    n = 300
    for i in range(n):
        publisher.publish(f"factory/l1/m{i % 3}/temp", {"value": i, "ts": 1_700_000_000 + i})
    wait_for("agent to buffer", lambda: stack.agent.status()["backlog"] == n, timeout=20)
    wait_for(  # the agent tried the hub while it was away, and knows it failed
        "a failed sync attempt",
        lambda: (stack.agent.status()["last_sync"] or {}).get("result", "").startswith("error"),
        timeout=30,
    )
    stack.hub.start()
    _wait_counts(stack, {f"l1/m{k}/temp": n // 3 for k in range(3)})
    readings = stack.hub.readings_by_sensor()
    got = sorted(v for rows in readings.values() for _, v in rows)
    assert got == [float(i) for i in range(n)]

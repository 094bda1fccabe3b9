"""Ingest against a real mosquitto: every payload form, dead letters, ack only after commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import mqtt
from agent.buffer import AppendResult, Buffer, DeadLetter, Reading
from agent.config import AgentConfig
from agent.ingest import Ingest, _Parsed, parse_message
from devtools.stack import Broker
from shared.topics import TopicTemplate

from .conftest import Publisher, make_config


async def wait_until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(cfg: AgentConfig, buffer: Buffer) -> AsyncIterator[Ingest]:
    ingest = Ingest(cfg, buffer)
    stopping = asyncio.Event()
    task = asyncio.create_task(ingest.run(stopping))
    try:
        await asyncio.wait_for(ingest.subscribed.wait(), 10)
        yield ingest
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


def stored(buffer: Buffer) -> list[tuple[str, float, float, str | None]]:
    return [(r.key, r.ts, r.value, r.unit) for r in buffer.claim(100_000)]


def test_parse_message_forms() -> None:
    t = TopicTemplate.compile("factory/{line}/{machine}/{sensor}")
    rs, dl = parse_message(
        t, "factory/l1/m1/temp", b'[{"value": 1}, {"value": 2, "ts": 5}]', 100.0, 1024
    )
    assert dl is None and [(r.key, r.ts, r.value) for r in rs] == [
        ("l1/m1/temp", 100.0, 1.0),
        ("l1/m1/temp", 5.0, 2.0),
    ]
    rs, dl = parse_message(t, "factory/l1/m1", b"1", 100.0, 1024)
    assert rs == [] and dl is not None and "does not fit" in dl.reason


async def test_every_payload_form_is_stored(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        publisher.publish(
            "factory/l1/press/temp", {"value": 23.5, "ts": 1732270000.123, "unit": "C"}
        )
        publisher.publish("factory/l1/press/temp", {"value": 24.0, "ts": "2024-11-22T10:06:41Z"})
        publisher.publish("factory/l1/press/temp", {"value": 24.5})
        publisher.publish(
            "factory/l1/press/rpm", [{"value": 1200, "ts": 1732270001}, {"value": 1210}]
        )
        publisher.publish("factory/l2/oven/humidity", 41)
        publisher.publish("factory/l2/oven/humidity", "41.5")
        await wait_until(lambda: buffer.backlog == 7)
    rows = stored(buffer)
    assert rows[0] == ("l1/press/temp", 1732270000.123, 23.5, "C")
    assert rows[1] == ("l1/press/temp", 1732270001.0, 24.0, None)
    assert [(k, v) for k, _, v, _ in rows[2:]] == [
        ("l1/press/temp", 24.5),
        ("l1/press/rpm", 1200.0),
        ("l1/press/rpm", 1210.0),
        ("l2/oven/humidity", 41.0),
        ("l2/oven/humidity", 41.5),
    ]
    assert buffer.stats().mqtt.connected is False  # disconnected on stop
    assert buffer.dead_letters_total == 0
    buffer.close()


async def test_malformed_go_to_dead_letters_and_flow_goes_on(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    bad = [
        ("factory/l1/press/temp", b"{not json"),
        ("factory/l1/press/temp", b"NaN"),
        ("factory/l1/press/temp", b'{"value": "hot"}'),
        ("factory/l1/press/temp", b'[{"value": 1}, {"value": "x"}]'),
        ("factory/l1/press", b"12"),
        ("factory/l1/press/temp", b"x" * 100_000),
    ]
    async with running(cfg, buffer):
        for topic, payload in bad:
            publisher.publish(topic, payload)
        publisher.publish("factory/l1/press/temp", 20.0)
        await wait_until(lambda: buffer.backlog == 1 and buffer.dead_letters_total == len(bad))
    dead = buffer._db.execute(
        "SELECT topic, payload, reason FROM dead_letters ORDER BY id"
    ).fetchall()
    assert [d[0] for d in dead] == [t for t, _ in bad]
    assert dead[0][1] == b"{not json"
    assert "not finite" in dead[1][2] and "does not fit" in dead[4][2]
    assert "exceeds" in dead[5][2]
    buffer.close()


async def test_group_commit_stores_a_burst_exactly_once(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port, mqtt__batch_max=100)
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        infos = [publisher.client.publish("factory/l/m/s", str(i), qos=1) for i in range(2000)]
        for info in infos:
            info.wait_for_publish(10)
        await wait_until(lambda: buffer.backlog == 2000)
    assert sorted(v for _, _, v, _ in stored(buffer)) == [float(i) for i in range(2000)]
    buffer.close()


class StuckBuffer(Buffer):
    """A buffer whose commit never comes: as if the agent died before COMMIT."""

    def append(
        self,
        readings: Sequence[Reading],
        dead_letters: Sequence[DeadLetter] = (),
        **_kw: Any,
    ) -> AppendResult:
        raise RuntimeError("simulated crash before commit")


async def test_uncommitted_message_is_redelivered(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    stuck = StuckBuffer(tmp_path / "stuck.db")
    ingest = Ingest(cfg, stuck)
    task = asyncio.create_task(ingest.run(asyncio.Event()))
    await asyncio.wait_for(ingest.subscribed.wait(), 10)
    publisher.publish("factory/l1/m1/temp", 42.0)
    with pytest.raises(RuntimeError, match="before commit"):
        await asyncio.wait_for(task, 10)  # the agent "crashed" holding an unacked message
    stuck.close()
    # Same client id, persistent session: the broker must hand the message over again.
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        await wait_until(lambda: buffer.backlog == 1)
        # The broker sends a session's pending messages before new ones: once this marker
        # is stored, a second copy of 42.0 would have been stored before it.
        publisher.publish("factory/l1/m1/temp", 43.0)
        await wait_until(lambda: buffer.backlog >= 2)
    assert [(k, v) for k, _, v, _ in stored(buffer)] == [("l1/m1/temp", 42.0), ("l1/m1/temp", 43.0)]
    buffer.close()


async def test_committed_messages_are_acked_not_redelivered(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        for i in range(5):
            publisher.publish("factory/l1/m1/temp", i)
        await wait_until(lambda: buffer.backlog == 5)
    async with running(cfg, buffer):
        # Anything the broker still held for the session comes before this marker.
        publisher.publish("factory/l1/m1/temp", 5)
        await wait_until(lambda: buffer.backlog >= 6)
    assert [v for _, _, v, _ in stored(buffer)] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    buffer.close()


async def test_messages_published_while_down_arrive_after_restart(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        pass  # registers the persistent session
    for i in range(50):
        publisher.publish("factory/l1/m1/temp", i)
    async with running(cfg, buffer):
        await wait_until(lambda: buffer.backlog == 50)
    buffer.close()


async def test_reconnects_after_broker_restart(tmp_path: Path, broker: Broker) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer) as ingest:
        broker.stop()
        await wait_until(lambda: not ingest.subscribed.is_set())
        assert buffer.stats().mqtt.connected is False
        broker.start()
        await wait_until(lambda: ingest.subscribed.is_set(), within=15)
        pub = Publisher(broker.port)
        pub.publish("factory/l1/m1/temp", 1.0)
        pub.close()
        await wait_until(lambda: buffer.backlog == 1)
    buffer.close()


class BlockingBuffer(Buffer):
    """when_full=block, full until told otherwise."""

    full = True
    refused = 0  # appends answered "full"

    def append(
        self,
        readings: Sequence[Reading],
        dead_letters: Sequence[DeadLetter] = (),
        **kw: Any,
    ) -> AppendResult:
        if self.full:
            self.refused += 1
            return AppendResult(0, 0, full=True)
        return super().append(readings, dead_letters, **kw)


async def test_block_holds_messages_until_space(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = BlockingBuffer(cfg.buffer.path)
    async with running(cfg, buffer) as ingest:
        publisher.publish("factory/l1/m1/temp", 1.0)
        # The message reached the buffer and was turned away, and ingest tried again: it
        # holds the message (unacked) instead of dropping it.
        await wait_until(lambda: buffer.refused >= 2)
        assert buffer.backlog == 0
        buffer.full = False
        ingest.space_freed.set()
        await wait_until(lambda: buffer.backlog == 1)
    buffer.close()


class LosingAcks(Ingest):
    """An agent that commits but whose PUBACKs never reach the broker while ``lose_acks``: as
    if it died between COMMIT and the PUBACK leaving the socket."""

    lose_acks = True

    def _ack(self, conn: mqtt.Connection, batch: list[mqtt.Message]) -> None:
        if not self.lose_acks:
            super()._ack(conn, batch)

    def drop_connection(self) -> None:
        assert self.link.current is not None
        self.link.current.abort()  # no DISCONNECT: the broker keeps the session


async def test_redelivery_of_a_committed_message_is_not_stored_twice(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    ingest = LosingAcks(cfg, buffer)
    stopping = asyncio.Event()
    task = asyncio.create_task(ingest.run(stopping))
    try:
        await asyncio.wait_for(ingest.subscribed.wait(), 10)
        for i in range(50):
            publisher.publish("factory/l1/m1/temp", {"value": i, "ts": 1_700_000_000 + i})
        await wait_until(lambda: buffer.backlog == 50)  # committed, never acked
        ingest.lose_acks = False
        ingest.subscribed.clear()
        ingest.drop_connection()
        await wait_until(ingest.subscribed.is_set)
        # The broker resends its unacked messages (DUP) before anything new, so once this
        # marker is stored every redelivery has been seen.
        publisher.publish("factory/l1/m1/temp", {"value": 50, "ts": 1_700_000_050})
        await wait_until(lambda: buffer.backlog == 51)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
    assert ingest.redeliveries_skipped == 50  # they did come back, flagged DUP
    assert [v for _, _, v, _ in stored(buffer)] == [float(i) for i in range(51)]
    # ... and the broker got its PUBACKs this time: nothing is pending for the session.
    async with running(cfg, buffer) as again:
        publisher.publish("factory/l1/m1/temp", {"value": 51, "ts": 1_700_000_051})
        await wait_until(lambda: buffer.backlog == 52)
    assert again.redeliveries_skipped == 0
    buffer.close()


class CrashBeforeCommit(Ingest):
    """Receives its first batch, then loses the connection without committing it."""

    crashed = False
    seen: list[tuple[int, bool]]

    async def _commit_and_ack(
        self, conn: mqtt.Connection, batch: list[mqtt.Message], stopping: asyncio.Event
    ) -> bool:
        self.seen.extend((m.mid, m.dup) for m in batch)
        if not self.crashed:
            self.crashed = True
            return False  # nothing committed, nothing acked; run() reconnects
        return await super()._commit_and_ack(conn, batch, stopping)


async def test_new_message_reusing_a_packet_id_and_payload_is_stored(
    tmp_path: Path, broker: Broker, publisher: Publisher
) -> None:
    cfg = make_config(tmp_path, broker.port, mqtt__batch_linger_ms=300.0)
    payloads = ["1.5", "2.5", "3.5"]  # no timestamp: byte-for-byte repeats are possible
    buffer = Buffer(cfg.buffer.path)
    async with running(cfg, buffer):
        for p in payloads:
            publisher.publish("factory/l1/m1/temp", p)
        await wait_until(lambda: buffer.backlog == 3)
    first_mids = sorted(m for (m,) in buffer._db.execute("SELECT mid FROM mqtt_committed"))
    # The session ends (a clean-session connect under the agent's id): the broker starts
    # numbering packets afresh for it.
    wipe = paho.Client(CallbackAPIVersion.VERSION2, cfg.client_id, clean_session=True)
    wipe.connect("127.0.0.1", broker.port)
    wipe.disconnect()
    ingest = CrashBeforeCommit(cfg, buffer)
    ingest.seen = []
    stopping = asyncio.Event()
    task = asyncio.create_task(ingest.run(stopping))
    try:
        await asyncio.wait_for(ingest.subscribed.wait(), 10)
        for p in payloads:
            publisher.publish("factory/l1/m1/temp", p)
        await wait_until(lambda: buffer.backlog == 6)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
    redelivered = sorted(mid for mid, dup in ingest.seen if dup)
    assert redelivered == first_mids  # same packet ids, same payloads, DUP set
    assert [v for _, _, v, _ in stored(buffer)] == [1.5, 2.5, 3.5] * 2
    assert ingest.redeliveries_skipped == 0
    buffer.close()


def test_a_big_batch_is_committed_in_parts_within_the_wal_limit(tmp_path: Path) -> None:
    """A transaction's pages wait in the WAL until a checkpoint: the messages of one MQTT
    batch are grouped, whole and in order, into appends of at most Buffer.txn_readings_cap
    readings (a message bigger than that goes alone)."""
    cfg = make_config(tmp_path)
    buffer = Buffer(cfg.buffer.path, max_bytes=1_000_000)
    ingest = Ingest(cfg, buffer)

    def msg(n: int) -> _Parsed:
        readings = [Reading("l1/m1/temp", 1_700_000_000.0 + i, 1.0, "C", 0.0) for i in range(n)]
        return _Parsed(None, None, readings, None)  # type: ignore[arg-type]

    cap = buffer.txn_readings_cap(msg(1).readings)
    assert 500 < cap < 5_000  # a 1 MB budget: a WAL limit of 64 KiB
    sizes = [cap // 3] * 10 + [cap * 2] + [1] * 5 + [0]
    parsed = [msg(n) for n in sizes]
    parts = ingest._parts(parsed)
    assert [p for part in parts for p in part] == parsed
    for part in parts:
        total = sum(len(p.readings) for p in part)
        assert total <= cap or len(part) == 1
    assert len(parts) == 6  # 3+3+3+1, the big one alone, the six small ones together
    buffer.close()


async def test_reconnect_waits_double_up_to_the_cap_and_restart_after_a_subscription(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reconnect_min_s 0.1, reconnect_max_s 0.5: a broker that is away is asked again after
    0.1, 0.2, 0.4, 0.5, 0.5 s; a connection lost after subscribing starts again at 0.1."""
    cfg = make_config(tmp_path, broker.port)
    buffer = Buffer(cfg.buffer.path)
    ingest = Ingest(cfg, buffer)
    waits: list[float] = []
    stopping = asyncio.Event()

    async def no_sleep(_stopping: asyncio.Event, seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            broker.start()  # the sixth attempt connects
        if len(waits) == 10:
            stopping.set()
        await asyncio.sleep(0)

    monkeypatch.setattr("agent.ingest._sleep_unless", no_sleep)
    broker.stop()
    task = asyncio.create_task(ingest.run(stopping))
    await asyncio.wait_for(ingest.subscribed.wait(), 15)
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    broker.stop()  # lost after subscribing
    await asyncio.wait_for(task, 15)
    assert waits[5:] == [0.1, 0.2, 0.4, 0.5, 0.5]
    buffer.close()

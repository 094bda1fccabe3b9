"""MQTT in: subscribe at QoS 1 with a persistent session, group-commit messages into the
buffer, and acknowledge each message to the broker only after its transaction committed.

Delivery window: a message whose PUBACK we have not sent is still the broker's; if the agent
dies before the commit it is redelivered on reconnect and stored then (once - the first try
never committed). The PUBACK is queued right after COMMIT (no ``await`` in between), but the
agent can still die before its bytes leave the socket; the broker then redelivers a message
that is already stored, with the DUP flag and the same packet id. Stored again it would get a
second seq, and the hub - which deduplicates on (gateway_id, seq), not on content - would keep
both. So each commit also records, in the same transaction, the packet id and a digest of the
topic and payload of every message in it (``Buffer.redelivered``); a DUP message matching the
latest committed message under its packet id is acknowledged without being stored again.

Limits of that check:

* A DUP message is dropped only when its packet id AND topic+payload digest match the last
  message committed under that id. The broker hands out ids in sequence (1..65535) and the
  buffer keeps the last few thousand, and a session the broker starts afresh
  (``session_present`` false: nothing can be redelivered) clears the record. What remains: a
  message that reuses a packet id within the same broker session, carries byte-for-byte the
  same topic and payload as the one committed under that id before, and whose first delivery
  was lost before commit. Sensors that put a timestamp or counter in the payload never hit it.
* Brokers that hand out packet ids out of sequence widen that last case; mosquitto does not.
* QoS 0 messages are never redelivered and are not recorded.
* Power loss (not kill -9) can roll back the last commits together with their record (see
  agent/buffer/__init__.py); the broker then redelivers them and they are stored - once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import Callable
from typing import NamedTuple

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from agent import mqtt
from agent.buffer import AppendResult, Buffer, DeadLetter, MessageId, Reading
from agent.config import AgentConfig
from agent.rules import Alerting
from agent.sparkplug.host import SparkplugHost
from agent.sparkplug.marks import MarkStore
from shared.payload import NO_WINDOW, PayloadError, TsWindow, parse_payload
from shared.topics import TopicError, TopicTemplate

log = structlog.get_logger("agent.ingest")

# A message to store, and the id recorded for it (None for QoS 0: never redelivered).
_Fresh = tuple[mqtt.Message, MessageId | None]


class _Parsed(NamedTuple):
    msg: mqtt.Message
    mid: MessageId | None
    readings: list[Reading]
    dead: DeadLetter | None


def parse_message(
    template: TopicTemplate,
    topic: str,
    payload: bytes,
    received_at: float,
    max_bytes: int,
    window: TsWindow = NO_WINDOW,
) -> tuple[list[Reading], DeadLetter | None]:
    """One MQTT message -> its readings, or the dead letter saying why it has none."""
    try:
        key = template.key(topic)
        parsed = parse_payload(payload, received_at, max_bytes, window)
    except (TopicError, PayloadError) as exc:
        return [], DeadLetter(topic, payload, str(exc), received_at)
    return [Reading(key, p.ts, p.value, p.unit, received_at) for p in parsed], None


def message_id(mid: int, topic: str, payload: bytes) -> MessageId:
    """What the redelivery check compares: the packet id and a digest of topic + payload."""
    h = hashlib.blake2b(topic.encode(), digest_size=16)
    h.update(b"\0")
    h.update(payload)
    return MessageId(mid, h.digest())


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


class _Backoff:
    """tenacity wait: doubling from ``first_s`` up to ``max_s``, counted from the attempt
    whose connection last got as far as subscribing."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.run_start = 1

    def __call__(self, state: RetryCallState) -> float:
        failures = min(state.attempt_number - self.run_start, 32)  # 0 for the first
        return min(self.max_s, self.first_s * 2.0**failures)

    def restart(self, attempt_number: int) -> None:
        self.run_start = attempt_number


class Ingest:
    def __init__(
        self,
        cfg: AgentConfig,
        buffer: Buffer,
        *,
        link: mqtt.Link | None = None,
        new_data: asyncio.Event | None = None,
        space_freed: asyncio.Event | None = None,
        on_subscribed: Callable[[], None] | None = None,
        alerting: Alerting | None = None,
    ) -> None:
        self.cfg = cfg
        self.buffer = buffer
        self.link = link or mqtt.Link(cfg.mqtt, cfg.client_id)
        self.template = TopicTemplate.compile(cfg.mqtt.topic_template)
        self.new_data = new_data or asyncio.Event()
        self.space_freed = space_freed or asyncio.Event()
        self.on_subscribed = on_subscribed
        self.alerting = alerting
        self._derive = alerting.derive if alerting is not None else None
        self.committed_messages = 0
        # Redeliveries of messages already committed, acked without storing them again.
        self.redeliveries_skipped = 0
        self.subscribed = asyncio.Event()
        # Sparkplug B beside JSON: messages under spBv1.0/ take its decoder (agent.sparkplug).
        self.sparkplug = (
            SparkplugHost(cfg.sparkplug, MarkStore(buffer)) if cfg.sparkplug.enabled else None
        )
        if self.sparkplug is not None and cfg.sparkplug.primary_host_id:
            self.link.will = self.sparkplug.state_will

    def _set_connected(self, connected: bool) -> None:
        self.buffer.set_state(mqtt_connected=int(connected), mqtt_since=time.time())

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, subscribe, consume; reconnect with exponential backoff until stopping.

        The waits between attempts double from ``reconnect_min_s`` up to ``reconnect_max_s``,
        counted from the last connection that got as far as subscribing: a connection lost
        after a day of work is retried after the minimum, a broker away for long is asked at
        most every ``reconnect_max_s``."""
        m = self.cfg.mqtt
        backoff = _Backoff(m.reconnect_min_s, m.reconnect_max_s)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(mqtt.MqttError),
            wait=backoff,
            stop=lambda _state: stopping.is_set(),
            sleep=lambda seconds: _sleep_unless(stopping, seconds),
            before_sleep=self._log_retry,
            reraise=True,
        )
        with contextlib.suppress(mqtt.MqttError):  # stopped while the broker was away
            async for attempt in retrying:
                with attempt:
                    n = attempt.retry_state.attempt_number
                    await self._session(stopping, functools.partial(backoff.restart, n))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        m = self.cfg.mqtt
        log.warning(
            "mqtt connection lost",
            error=str(exc),
            host=m.host,
            port=m.port,
            retry_in_s=round(state.upcoming_sleep, 2),
        )

    async def _session(self, stopping: asyncio.Event, subscribed: Callable[[], None]) -> None:
        """One connection, until it ends: returns when stopping, MqttError otherwise (the
        caller backs off and retries). ``subscribed`` is called once the subscription holds."""
        if stopping.is_set():
            return
        try:
            async with self.link.connection() as conn:
                if not conn.session_present:
                    self.buffer.forget_messages()
                await self._subscribe(conn)
                subscribed()
                await self._consume(conn, stopping)
            if not stopping.is_set():
                raise mqtt.MqttError("connection closed")
        finally:
            if self.subscribed.is_set():
                self.subscribed.clear()
                self._set_connected(False)

    async def _subscribe(self, conn: mqtt.Connection) -> None:
        topics = list(self.cfg.mqtt.subscribe)
        if self.sparkplug is not None:
            topics += [t for t in self.cfg.sparkplug.subscribe if t not in topics]
        failed = await conn.subscribe(topics, qos=1)
        if failed:
            raise mqtt.MqttError(f"broker refused subscription to {failed}")
        self._set_connected(True)
        if self.sparkplug is not None:
            self.sparkplug.announce(conn.publish_nowait)
        self.subscribed.set()
        log.info("subscribed", topics=",".join(topics), qos=1, client_id=self.cfg.client_id)
        if self.on_subscribed is not None:
            self.on_subscribed()

    async def _consume(self, conn: mqtt.Connection, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        batch_max = self.cfg.mqtt.batch_max
        linger = self.cfg.mqtt.batch_linger_ms / 1000
        stop_task = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                first = await conn.next(stop_task, None)
                if first is None:
                    return
                batch = [first]
                deadline = loop.time() + linger
                while len(batch) < batch_max:
                    msg = conn.get_nowait()
                    if msg is None:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        msg = await conn.next(stop_task, remaining, batch_max - len(batch))
                        if msg is None:
                            break
                    batch.append(msg)
                if not await self._commit_and_ack(conn, batch, stopping):
                    return
        finally:
            stop_task.cancel()

    def _parse(self, batch: list[_Fresh]) -> list[_Parsed]:
        received_at = time.time()
        max_bytes = self.cfg.mqtt.max_payload_bytes
        window = self.cfg.ingest.window()
        parsed = []
        sparkplug = self.sparkplug
        for msg, mid in batch:
            if sparkplug is not None and sparkplug.accepts(msg.topic):
                readings, dead = sparkplug.parse(
                    msg.topic, msg.payload, received_at, max_bytes, window
                )
            else:
                readings, dead = parse_message(
                    self.template,
                    msg.topic,
                    msg.payload,
                    received_at,
                    max_bytes,
                    window,
                )
            parsed.append(_Parsed(msg, mid, readings, dead))
        return parsed

    def _parts(self, parsed: list[_Parsed]) -> list[list[_Parsed]]:
        """Whole messages, grouped so that no group has more readings than one buffer
        transaction may carry (Buffer.txn_readings_cap; at least one message a group)."""
        sample = next((p.readings for p in parsed if p.readings), [])
        cap = self.buffer.txn_readings_cap(sample)
        parts: list[list[_Parsed]] = [[]]
        n = 0
        for p in parsed:
            if parts[-1] and n + len(p.readings) > cap:
                parts.append([])
                n = 0
            parts[-1].append(p)
            n += len(p.readings)
        return parts

    async def _commit_and_ack(
        self, conn: mqtt.Connection, batch: list[mqtt.Message], stopping: asyncio.Event
    ) -> bool:
        """Commit the batch, then ack it, in as few transactions as the buffer's budget allows
        (a transaction's pages wait in the WAL until a checkpoint, and the WAL has a bounded
        share of max_bytes). False when stopped while the buffer stayed full (what was not
        committed is not acked: the broker keeps it for the next start)."""
        fresh, redelivered = self._drop_redelivered(batch)
        # Stored by an earlier commit: only the ack is missing.
        self._ack(conn, redelivered)
        self.committed_messages += len(redelivered)
        parsed = self._parse(fresh)
        if self.sparkplug is not None:
            # Rebirth requests (NCMD) need no commit first: the births they ask for come later.
            self.sparkplug.flush(conn.publish_nowait)
        for part in self._parts(parsed):
            if not await self._commit_part(conn, part, stopping):
                return False
        return True

    async def _commit_part(
        self, conn: mqtt.Connection, part: list[_Parsed], stopping: asyncio.Event
    ) -> bool:
        readings = [r for p in part for r in p.readings]
        dead = [p.dead for p in part if p.dead is not None]
        ids = [p.mid for p in part if p.mid is not None]
        result = self._append(readings, dead, ids)
        warned = False
        while result.full:
            if not warned:
                log.warning(
                    "buffer full, holding messages unacknowledged until the sync frees space",
                    messages=len(part),
                    max_bytes=self.buffer.max_bytes,
                )
                warned = True
            self.space_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._space_or_stop(stopping), 1.0)
            if stopping.is_set():
                return False
            result = self._append(readings, dead, ids)
        # No await between COMMIT (inside append) and here: see the module docstring.
        self._ack(conn, [p.msg for p in part])
        if result.alerts and self.alerting is not None:
            self.alerting.publish(result.alerts)
        self._after_commit(result, len(part), len(dead))
        return True

    def _drop_redelivered(
        self, batch: list[mqtt.Message]
    ) -> tuple[list[_Fresh], list[mqtt.Message]]:
        """(the messages to store with the ids to record for them, the redeliveries of
        committed messages, to ack without storing; see the module docstring)."""
        ids: dict[int, MessageId] = {}
        for i, msg in enumerate(batch):
            if msg.qos > 0:
                ids[i] = message_id(msg.mid, msg.topic, msg.payload)
        dups = [ids[i] for i, msg in enumerate(batch) if i in ids and msg.dup]
        known = self.buffer.redelivered(dups) if dups else set()
        fresh = [(msg, ids.get(i)) for i, msg in enumerate(batch) if ids.get(i) not in known]
        if not known:
            return fresh, []
        redelivered = [msg for i, msg in enumerate(batch) if i in ids and ids[i] in known]
        self.redeliveries_skipped += len(redelivered)
        log.info(
            "redelivered messages were already stored; acknowledged without storing again",
            count=len(redelivered),
            total=self.redeliveries_skipped,
        )
        return fresh, redelivered

    def _append(
        self, readings: list[Reading], dead: list[DeadLetter], ids: list[MessageId]
    ) -> AppendResult:
        if self._derive is None:
            return self.buffer.append(readings, dead, messages=ids)
        return self.buffer.append(readings, dead, derive_alerts=self._derive, messages=ids)

    async def _space_or_stop(self, stopping: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(self.space_freed.wait()),
            asyncio.ensure_future(stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _ack(self, conn: mqtt.Connection, batch: list[mqtt.Message]) -> None:
        conn.ack(batch)

    def _after_commit(self, result: AppendResult, messages: int, dead: int) -> None:
        self.committed_messages += messages
        if result.dropped:
            log.warning(
                "buffer over budget, readings dropped",
                policy=self.buffer.when_full,
                dropped=result.dropped,
                dropped_total=self.buffer.dropped,
            )
        if dead:
            log.info("dead letters stored", count=dead, total=self.buffer.dead_letters_total)
        if result.stored:
            self.new_data.set()

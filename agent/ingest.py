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
  agent/buffer.py); the broker then redelivers them and they are stored - once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import aiomqtt
import paho.mqtt.client as mqtt
import structlog

from agent.buffer import AppendResult, Buffer, DeadLetter, MessageId, Reading
from agent.config import AgentConfig
from agent.rules import Alerting
from shared.payload import NO_WINDOW, PayloadError, TsWindow, parse_payload
from shared.topics import TopicError, TopicTemplate

log = structlog.get_logger("agent.ingest")

# A message to store, and the id recorded for it (None for QoS 0: never redelivered).
_Fresh = tuple[aiomqtt.Message, MessageId | None]


class _Parsed(NamedTuple):
    msg: aiomqtt.Message
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


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


def message_id(mid: int, topic: str, payload: bytes) -> MessageId:
    """What the redelivery check compares: the packet id and a digest of topic + payload."""
    h = hashlib.blake2b(topic.encode(), digest_size=16)
    h.update(b"\0")
    h.update(payload)
    return MessageId(mid, h.digest())


class _Message(aiomqtt.Message):
    """aiomqtt's Message plus the DUP flag, which aiomqtt 2.x leaves out."""

    dup: bool = False


class _NotifyingQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, plus an event set once ``want`` messages are waiting.

    While lingering for a batch we want one wake-up when the batch is full (or the linger
    ends), not one per message: that halves the event-loop work per message.
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.arrived = asyncio.Event()
        self.want = 1

    def _put(self, item: aiomqtt.Message) -> None:
        super()._put(item)
        if self.qsize() >= self.want:
            self.arrived.set()


class Ingest:
    def __init__(
        self,
        cfg: AgentConfig,
        buffer: Buffer,
        *,
        new_data: asyncio.Event | None = None,
        space_freed: asyncio.Event | None = None,
        on_subscribed: Callable[[], None] | None = None,
        alerting: Alerting | None = None,
    ) -> None:
        self.cfg = cfg
        self.buffer = buffer
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
        self._session_present = False

    def _client(self) -> aiomqtt.Client:
        m = self.cfg.mqtt
        client = aiomqtt.Client(
            m.host,
            m.port,
            identifier=self.cfg.client_id,
            clean_session=False,
            keepalive=m.keepalive,
            username=m.username,
            password=m.password,
            queue_type=_NotifyingQueue,
            tls_params=(
                aiomqtt.TLSParameters(ca_certs=m.tls_ca, certfile=m.tls_cert, keyfile=m.tls_key)
                if m.tls
                else None
            ),
            tls_insecure=m.tls_insecure if m.tls else None,
        )
        # paho acks QoS 1 messages as soon as it has parsed them unless told otherwise; we ack
        # ourselves after COMMIT (aiomqtt has no public API for it, see aiomqtt issue #345).
        client._client.manual_ack_set(True)
        return client

    def _instrument(self, client: aiomqtt.Client) -> None:
        """Keep what aiomqtt drops and the redelivery check needs: each message's DUP flag
        and the CONNACK's session-present flag."""
        paho = client._client
        queue = client._queue

        def on_connect(
            c: mqtt.Client,
            userdata: Any,
            flags: mqtt.ConnectFlags,
            reason_code: Any,
            properties: Any = None,
        ) -> None:
            self._session_present = bool(flags.session_present)
            client._on_connect(c, userdata, flags, reason_code, properties)

        def on_message(_c: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            m = _Message._from_paho_message(message)
            m.dup = bool(message.dup)
            # Unbounded queue (aiomqtt's default), so this never raises QueueFull.
            queue.put_nowait(m)

        paho.on_connect = on_connect
        paho.on_message = on_message

    def _set_connected(self, connected: bool) -> None:
        self.buffer.set_state(mqtt_connected=int(connected), mqtt_since=time.time())

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, subscribe, consume; reconnect with exponential backoff until stopping."""
        m = self.cfg.mqtt
        delay = m.reconnect_min_s
        while not stopping.is_set():
            # A fresh Client per connection: aiomqtt's message queue outlives a connection,
            # and acking a message left over from the previous one would ack a packet id the
            # broker has since re-sent or reused.
            client = self._client()
            self._instrument(client)
            try:
                async with client:
                    if not self._session_present:
                        self.buffer.forget_messages()
                    await self._subscribe(client)
                    delay = m.reconnect_min_s
                    await self._consume(client, stopping)
            except aiomqtt.MqttError as exc:
                log.warning(
                    "mqtt connection lost",
                    error=str(exc),
                    host=m.host,
                    port=m.port,
                    retry_in_s=round(delay, 2),
                )
            finally:
                if self.alerting is not None:
                    self.alerting.publisher = None
                if self.subscribed.is_set():
                    self.subscribed.clear()
                    self._set_connected(False)
            if stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, m.reconnect_max_s)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        topics = self.cfg.mqtt.subscribe
        codes = await client.subscribe([(t, 1) for t in topics])
        failed = [t for t, rc in zip(topics, codes, strict=False) if _is_failure(rc)]
        if failed:
            raise aiomqtt.MqttError(f"broker refused subscription to {failed}")
        self._set_connected(True)
        if self.alerting is not None:
            a = self.cfg.alerts
            paho = client._client

            # paho directly: queued at once, PUBACK handled by paho; aiomqtt's publish()
            # would make ingest wait a round trip per alert.
            def publish(topic: str, body: bytes) -> None:
                info = paho.publish(topic, body, a.qos, a.retain)
                if info.rc != 0:
                    raise aiomqtt.MqttError(f"publish failed (rc={info.rc})")

            self.alerting.publisher = publish
        self.subscribed.set()
        log.info("subscribed", topics=",".join(topics), qos=1, client_id=self.cfg.client_id)
        if self.on_subscribed is not None:
            self.on_subscribed()

    async def _consume(self, client: aiomqtt.Client, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        batch_max = self.cfg.mqtt.batch_max
        linger = self.cfg.mqtt.batch_linger_ms / 1000
        queue = client._queue
        stop_task = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                first = await self._next(client, stop_task, None)
                if first is None:
                    return
                batch = [first]
                deadline = loop.time() + linger
                while len(batch) < batch_max:
                    try:
                        batch.append(queue.get_nowait())
                        continue
                    except asyncio.QueueEmpty:
                        pass
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    msg = await self._next(client, stop_task, remaining, batch_max - len(batch))
                    if msg is None:
                        break
                    batch.append(msg)
                if not await self._commit_and_ack(client, batch, stopping):
                    return
        finally:
            stop_task.cancel()

    async def _next(
        self,
        client: aiomqtt.Client,
        stop_task: asyncio.Future[Any],
        within: float | None,
        want: int = 1,
    ) -> aiomqtt.Message | None:
        """The next message, or None on stop/timeout; MqttError when the connection drops.
        Wakes when ``want`` messages are queued or ``within`` seconds passed, whichever first.

        Waits on the queue's event rather than a cancellable Queue.get(): a get cancelled in
        the instant it succeeded would swallow a message that is then never committed nor
        acked, pinning one of the broker's in-flight slots until the next reconnect.
        """
        queue = client._queue
        assert isinstance(queue, _NotifyingQueue)
        disconnected = client._disconnected
        while True:
            if disconnected.done():
                # Messages still queued can no longer be acked on this connection; the broker
                # redelivers them, so committing them now would only store them twice.
                raise aiomqtt.MqttError("disconnected") from disconnected.exception()
            if queue.qsize() >= want or (within is not None and within <= 0):
                try:
                    return queue.get_nowait()
                except asyncio.QueueEmpty:
                    return None
            queue.want = want
            queue.arrived.clear()
            arrived = asyncio.ensure_future(queue.arrived.wait())
            try:
                done, _ = await asyncio.wait(
                    {arrived, stop_task, disconnected},
                    timeout=within,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                arrived.cancel()
                queue.want = 1
            if stop_task in done:
                return None
            if not done:
                within = 0  # linger over: take whatever has arrived

    def _parse(self, batch: list[_Fresh]) -> list[_Parsed]:
        received_at = time.time()
        max_bytes = self.cfg.mqtt.max_payload_bytes
        window = self.cfg.ingest.window()
        parsed = []
        for msg, mid in batch:
            readings, dead = parse_message(
                self.template,
                msg.topic.value,
                _payload_bytes(msg.payload),
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
        self, client: aiomqtt.Client, batch: list[aiomqtt.Message], stopping: asyncio.Event
    ) -> bool:
        """Commit the batch, then ack it, in as few transactions as the buffer's budget allows
        (a transaction's pages wait in the WAL until a checkpoint, and the WAL has a bounded
        share of max_bytes). False when stopped while the buffer stayed full (what was not
        committed is not acked: the broker keeps it for the next start)."""
        fresh, redelivered = self._drop_redelivered(batch)
        # Stored by an earlier commit: only the ack is missing.
        self._ack(client, redelivered)
        self.committed_messages += len(redelivered)
        for part in self._parts(self._parse(fresh)):
            if not await self._commit_part(client, part, stopping):
                return False
        return True

    async def _commit_part(
        self, client: aiomqtt.Client, part: list[_Parsed], stopping: asyncio.Event
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
        self._ack(client, [p.msg for p in part])
        if result.alerts and self.alerting is not None:
            self.alerting.publish(result.alerts)
        self._after_commit(result, len(part), len(dead))
        return True

    def _drop_redelivered(
        self, batch: list[aiomqtt.Message]
    ) -> tuple[list[_Fresh], list[aiomqtt.Message]]:
        """(the messages to store with the ids to record for them, the redeliveries of
        committed messages, to ack without storing; see the module docstring)."""
        ids: dict[int, MessageId] = {}
        for i, msg in enumerate(batch):
            if msg.qos > 0:
                ids[i] = message_id(msg.mid, msg.topic.value, _payload_bytes(msg.payload))
        dups = [ids[i] for i, msg in enumerate(batch) if i in ids and getattr(msg, "dup", False)]
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

    def _ack(self, client: aiomqtt.Client, batch: list[aiomqtt.Message]) -> None:
        paho = client._client
        for msg in batch:
            if msg.qos > 0:
                paho.ack(msg.mid, msg.qos)

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


def _is_failure(rc: object) -> bool:
    # paho gives ReasonCode objects (VERSION2 callbacks) or, from older brokers, ints.
    is_failure = getattr(rc, "is_failure", None)
    if isinstance(is_failure, bool):
        return is_failure
    return isinstance(rc, int) and rc >= 0x80

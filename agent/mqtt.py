"""The agent's MQTT adapter: the one module that knows aiomqtt and paho.

Everything else talks to a :class:`Link` (one per agent, lives across reconnects) and the
:class:`Connection` it opens, in terms of :class:`Message`: topic, payload, QoS, packet id
and DUP flag. What the rest of the agent relies on, and what this module does about
aiomqtt's gaps to give it:

* **Acknowledge after commit.** paho acks a QoS 1 message as soon as it has parsed it unless
  told otherwise; a Connection turns that off and acks only in :meth:`Connection.ack`
  (aiomqtt has no public API for it, see aiomqtt issue #345).
* **The DUP flag and the CONNACK's session-present flag**, which aiomqtt 2.x drops, are kept
  (the redelivery check in agent/ingest.py needs both).
* **One fresh client per connection.** aiomqtt's client outlives a connection with its queue;
  acking a message left over from the previous connection would ack a packet id the broker
  has since re-sent or reused. A Connection's queue dies with it.
* **No cancelled get.** :meth:`Connection.next` waits on an event instead of a cancellable
  ``Queue.get()``: a get cancelled in the instant it succeeded would swallow a message that
  is then never committed nor acked, pinning one of the broker's in-flight slots until the
  next reconnect.
* **Publishing without a round trip.** :meth:`Link.publish` (the :class:`AlertPublisher`
  that ``agent.rules.Alerting`` is built with) queues on the current connection through
  paho, which handles the PUBACK; aiomqtt's ``publish()`` would make ingest wait a round trip
  per alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as paho

from agent.config import MqttConfig

# What every failure of the broker connection raises (connect refused, lost, timed out).
MqttError = aiomqtt.MqttError


class AlertPublisher(Protocol):
    def publish(self, topic: str, body: bytes) -> bool:
        """Queue one message without waiting; False when no connection is up (the message
        is dropped: MQTT alerts are best effort). MqttError when the connection refuses."""
        ...


@dataclass(frozen=True, slots=True)
class Message:
    """An incoming message, as much of it as the agent uses."""

    topic: str
    payload: bytes
    qos: int
    mid: int  # the packet id (0 for QoS 0)
    dup: bool  # a redelivery the broker flagged (QoS >= 1)


class _NotifyingQueue(asyncio.Queue[Message]):
    """The incoming queue, plus an event set once ``want`` messages are waiting.

    While lingering for a batch we want one wake-up when the batch is full (or the linger
    ends), not one per message: that halves the event-loop work per message.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.want = 1

    def _put(self, item: Message) -> None:
        super()._put(item)
        if self.qsize() >= self.want:
            self.arrived.set()


# A last will: (topic, payload, qos, retain), published by the broker if we vanish.
Will = tuple[str, bytes, int, bool]


class Connection:
    """One connection to the broker: ``async with`` connects and disconnects."""

    def __init__(self, cfg: MqttConfig, client_id: str, will: Will | None = None) -> None:
        self._client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=client_id,
            clean_session=False,
            keepalive=cfg.keepalive,
            username=cfg.username,
            password=cfg.password,
            tls_params=(
                aiomqtt.TLSParameters(
                    ca_certs=cfg.tls_ca, certfile=cfg.tls_cert, keyfile=cfg.tls_key
                )
                if cfg.tls
                else None
            ),
            tls_insecure=cfg.tls_insecure if cfg.tls else None,
            will=aiomqtt.Will(*will) if will is not None else None,
        )
        self._paho = self._client._client
        self._paho.manual_ack_set(True)
        self._queue = _NotifyingQueue()
        # From the CONNACK: False when the broker started a new session (nothing from
        # before can be redelivered, and packet ids start afresh).
        self.session_present = False
        aiomqtt_on_connect = self._client._on_connect

        def on_connect(
            c: paho.Client,
            userdata: Any,
            flags: paho.ConnectFlags,
            reason_code: Any,
            properties: Any = None,
        ) -> None:
            self.session_present = bool(flags.session_present)
            aiomqtt_on_connect(c, userdata, flags, reason_code, properties)

        def on_message(_c: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
            # Unbounded queue: this never raises QueueFull (the broker's in-flight limit
            # bounds what can arrive unacknowledged).
            self._queue.put_nowait(
                Message(
                    message.topic,
                    bytes(message.payload),
                    message.qos,
                    message.mid,
                    bool(message.dup),
                )
            )

        self._paho.on_connect = on_connect
        self._paho.on_message = on_message

    async def __aenter__(self) -> Connection:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def subscribe(self, topics: Sequence[str], qos: int = 1) -> list[str]:
        """Subscribe to every topic filter; returns those the broker refused."""
        codes = await self._client.subscribe([(t, qos) for t in topics])
        return [t for t, rc in zip(topics, codes, strict=False) if _is_failure(rc)]

    def ack(self, messages: Sequence[Message]) -> None:
        """PUBACK each QoS > 0 message (queued at once; paho writes it out)."""
        for msg in messages:
            if msg.qos > 0:
                self._paho.ack(msg.mid, msg.qos)

    def publish_nowait(self, topic: str, body: bytes, qos: int, retain: bool) -> None:
        info = self._paho.publish(topic, body, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish failed (rc={info.rc})")

    def get_nowait(self) -> Message | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def next(
        self, stop: asyncio.Future[Any], within: float | None, want: int = 1
    ) -> Message | None:
        """The next message, or None once ``stop`` is done or ``within`` seconds passed;
        MqttError when the connection drops. Wakes when ``want`` messages are queued or
        ``within`` passed, whichever comes first."""
        queue = self._queue
        while True:
            # Read each time: aiomqtt replaces the future when it connects.
            disconnected = self._client._disconnected
            if disconnected.done():
                # Messages still queued can no longer be acked on this connection; the broker
                # redelivers them, so committing them now would only store them twice.
                raise MqttError("disconnected") from disconnected.exception()
            if queue.qsize() >= want or (within is not None and within <= 0):
                return self.get_nowait()
            queue.want = want
            queue.arrived.clear()
            arrived = asyncio.ensure_future(queue.arrived.wait())
            try:
                done, _ = await asyncio.wait(
                    {arrived, stop, disconnected},
                    timeout=within,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                arrived.cancel()
                queue.want = 1
            if stop in done:
                return None
            if not done:
                within = 0  # linger over: take whatever has arrived

    def abort(self) -> None:
        """Cut the TCP connection without DISCONNECT, as a crash or a network cut would:
        the broker keeps the session and redelivers what was not acknowledged."""
        sock = self._paho.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)


class Link:
    """The agent's side of the broker across reconnects: opens one :class:`Connection` at a
    time and publishes on it (an :class:`AlertPublisher`)."""

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        *,
        publish_qos: int = 1,
        publish_retain: bool = False,
    ) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.publish_qos = publish_qos
        self.publish_retain = publish_retain
        # The connection that is up, if any.
        self.current: Connection | None = None
        # Called for each new connection: its last will, if any (a Sparkplug primary host's
        # STATE offline, whose timestamp must be that connection's).
        self.will: Callable[[], Will | None] | None = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """``async with link.connection() as conn``: a fresh client, connected."""
        will = self.will() if self.will is not None else None
        async with Connection(self.cfg, self.client_id, will) as conn:
            self.current = conn
            try:
                yield conn
            finally:
                self.current = None

    def publish(self, topic: str, body: bytes) -> bool:
        conn = self.current
        if conn is None:
            return False
        conn.publish_nowait(topic, body, self.publish_qos, self.publish_retain)
        return True


def _is_failure(rc: object) -> bool:
    # paho gives ReasonCode objects (VERSION2 callbacks) or, from older brokers, ints.
    is_failure = getattr(rc, "is_failure", None)
    if isinstance(is_failure, bool):
        return is_failure
    return isinstance(rc, int) and rc >= 0x80

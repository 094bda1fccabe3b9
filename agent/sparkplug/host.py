"""The agent as a Sparkplug B host application: what ingest calls for each message under
``spBv1.0/`` (:meth:`SparkplugHost.parse`) and after each commit (:meth:`SparkplugHost.flush`:
the rebirth requests), and the primary host's STATE certificate.

Readings go back to ingest and take the JSON readings' path (one buffer transaction, then the
PUBACK). Stale/fresh marks are written to the buffer's state table as the message is parsed,
before its commit and ack: a crash in between redelivers the message, and a mark written
twice is the same mark.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agent.buffer import DeadLetter, Reading
from agent.config import SparkplugConfig
from agent.mqtt import MqttError
from agent.sparkplug.encode import ncmd_topic, now_ms, rebirth_command, state_payload
from agent.sparkplug.marks import MarkStore
from agent.sparkplug.metrics import Exporter
from agent.sparkplug.session import NodeId, Sessions
from agent.sparkplug.topic import is_sparkplug, is_state, state_topic
from shared.payload import NO_WINDOW, TsWindow

log = structlog.get_logger("agent.sparkplug")

# publish(topic, body, qos, retain): queue one message on the current connection.
Publish = Callable[[str, bytes, int, bool], None]


class SparkplugHost:
    def __init__(self, cfg: SparkplugConfig, marks: MarkStore) -> None:
        self.cfg = cfg
        self.marks = marks
        self.sessions = Sessions(cfg.rebirth_min_interval_s)
        self._rebirths: list[NodeId] = []
        self._exporter = Exporter()
        self._state_ts = 0  # the timestamp of the current connection's STATE will
        self.messages = 0

    @staticmethod
    def accepts(topic: str) -> bool:
        return is_sparkplug(topic)

    def parse(
        self,
        topic: str,
        payload: bytes,
        received_at: float,
        max_bytes: int,
        window: TsWindow = NO_WINDOW,
    ) -> tuple[list[Reading], DeadLetter | None]:
        """One message under spBv1.0/ -> its readings, or the dead letter saying why none."""
        self.messages += 1
        if is_state(topic):
            return [], None  # a primary host's certificate (ours, or another host's)
        if len(payload) > max_bytes:
            reason = f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit"
            return [], DeadLetter(topic, payload, reason, received_at)
        out = self.sessions.handle(topic, payload, received_at, window)
        if out.marks:
            self.marks.add(out.marks)
            for mark in out.marks:
                log.info(
                    "sparkplug sensors marked " + ("stale" if mark.stale else "fresh"),
                    topic=topic,
                    sensors=len(mark.keys),
                )
        if out.rebirth is not None:
            self._rebirths.append(out.rebirth)
        if out.dead is not None:
            return [], DeadLetter(topic, payload, out.dead, received_at)
        return out.readings, None

    def flush(self, publish: Publish | None) -> None:
        """Update the Prometheus counters, and send the rebirth requests the last messages
        called for (QoS 0, not retained, as the spec has NCMD). Without a connection they
        are dropped: the node's next message asks again once the rate limit allows."""
        s = self.sessions
        self._exporter.export(s.skipped, s.events, s.rebirths_requested)
        rebirths, self._rebirths = self._rebirths, []
        if publish is None:
            return
        for group_id, node_id in rebirths:
            try:
                publish(ncmd_topic(group_id, node_id), rebirth_command(), 0, False)
            except MqttError as exc:
                # The connection is going; its loss surfaces where ingest waits for messages.
                log.warning("sparkplug rebirth request not sent", error=str(exc))
                return
            log.info("sparkplug rebirth requested", group_id=group_id, edge_node_id=node_id)

    # -- primary host ---------------------------------------------------------------------

    def state_will(self) -> tuple[str, bytes, int, bool] | None:
        """The will of the next connection as primary host (STATE offline, retained, QoS 1),
        or None. Its timestamp is the one :meth:`announce` then publishes online with, as the
        spec pairs them (a node compares them to tell an old will from a new birth)."""
        if not self.cfg.primary_host_id:
            return None
        self._state_ts = now_ms()
        topic = state_topic(self.cfg.primary_host_id)
        return topic, state_payload(False, self._state_ts), 1, True

    def announce(self, publish: Publish) -> None:
        """Once subscribed: STATE online, retained, QoS 1 (spec §7.2)."""
        if self.cfg.primary_host_id:
            topic = state_topic(self.cfg.primary_host_id)
            publish(topic, state_payload(True, self._state_ts or now_ms()), 1, True)
            log.info("sparkplug primary host online", topic=topic)

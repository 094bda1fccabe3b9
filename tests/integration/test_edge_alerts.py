"""The edge decides alone (docs/reliability.md, invariant 5), end to end with the real processes: an
alert fires on MQTT with the hub down, and reaches the hub exactly once when it is back."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from devtools.stack import Agent, Broker, Hub, stopping, wait_for

from .conftest import Publisher

pytestmark = pytest.mark.integration

KEY = "l1/press/temp"


class AlertListener:
    """A local HMI: subscribes to alerts/# and notes when each message arrived."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hmi")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((time.monotonic(), msg.topic, json.loads(msg.payload)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_alert_fires_with_the_hub_down_and_reaches_it_once(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    hub = Hub(tmp_path)
    token = hub.add_gateway("gw-01")
    rules = f'[rules."{KEY}"]\nmin = 10.0\nmax = 85.0\n'
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token,
        extra=rules,
    )
    with stopping(broker, hub, agent):
        broker.start()
        agent.start()  # the hub has never been up: the rules come from agent.toml alone
        hmi = AlertListener(broker.port)
        publisher = Publisher(broker.port)
        try:
            publisher.publish(f"factory/{KEY}", {"value": 50.0})
            sent = time.monotonic()
            publisher.publish(f"factory/{KEY}", {"value": 97.0})
            wait_for("the alert on MQTT", lambda: len(hmi.got) >= 1, timeout=5, every=0.01)
            arrived, topic, body = hmi.got[0]
            assert arrived - sent < 1.0
            assert topic == f"alerts/{KEY}"
            assert (body["event"], body["breach_type"], body["value"]) == (
                "open",
                "above_maximum",
                97.0,
            )

            hub.start()
            with hub.client() as c:

                def edge_alerts() -> list[dict[str, Any]]:
                    found = c.get("/api/v1/sensors", params={"key": KEY}).json()["data"]
                    if not found:
                        return []
                    sensor_id = found[0]["id"]
                    data = c.get(f"/api/v1/sensors/{sensor_id}/alerts").json()["data"]
                    return list(data["edge_alerts"])

                wait_for("the alert at the hub", lambda: len(edge_alerts()) >= 1, timeout=15)
                # Further syncs (and a second one of the same alert) must not double it.
                publisher.publish(f"factory/{KEY}", {"value": 60.0})
                # The reading closes the alert: a second version of it, in the buffer by the
                # time its message is out. Waited for first: before the agent has the reading,
                # the buffer is empty too, and the close would be left to sync after the test.
                wait_for(
                    "the close on MQTT",
                    lambda: any(body["event"] == "close" for _, _, body in hmi.got),
                    timeout=15,
                )
                # Acked after the hub's commit: once the reading and every alert version have
                # left the buffer, the hub has stored whatever they carried.
                wait_for(
                    "the next sync",
                    lambda: (
                        (st := agent.status())["backlog"] == 0 and st["alerts"]["unsynced"] == 0
                    ),
                    timeout=30,
                )
                alerts = edge_alerts()
            assert len(alerts) == 1, alerts
            assert alerts[0]["value"] == 97.0 and alerts[0]["breach_type"] == "above_maximum"
            assert agent.status()["alerts"]["unsynced"] == 0
        finally:
            publisher.close()
            hmi.close()


def test_an_alarm_cleared_by_an_older_reading_clears_at_the_hub(tmp_path: Path) -> None:
    """Issue 23: the reading that clears an alarm is stamped before the one that opened it (a
    device replaying its memory). The hub refused that clear with a 422, the agent gave it
    up, and the alarm stayed active at the hub for good."""
    broker = Broker(tmp_path)
    hub = Hub(tmp_path)
    token = hub.add_gateway("gw-01")
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token,
        extra=f'[rules."{KEY}"]\nmin = 10.0\nmax = 85.0\n',
    )
    with stopping(broker, hub, agent):
        broker.start()
        hub.start()
        agent.start()
        publisher = Publisher(broker.port)
        try:
            now = time.time()
            publisher.publish(f"factory/{KEY}", {"value": 97.0, "ts": now})
            publisher.publish(f"factory/{KEY}", {"value": 50.0, "ts": now - 600})
            wait_for(
                "the alert's open and close synced",
                lambda: (
                    (st := agent.status())["backlog"] == 0
                    and st["alerts"]["open"] == 0
                    and st["alerts"]["unsynced"] == 0
                ),
                timeout=30,
            )
        finally:
            publisher.close()
        with hub.client() as c:
            alerts = c.get("/api/v1/alerts").json()["data"]
        assert [(a["state"], a["cleared_at"] == a["opened_at"]) for a in alerts] == [
            ("cleared", True)
        ]
        assert agent.status()["dead_letters"] == 0

"""Fixtures for the agent's tests: a real mosquitto on a free port, configs, a paho publisher."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig
from devtools.stack import Broker, mosquitto_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """The same mosquitto (persistence, large inflight window) as the integration tests."""
    if mosquitto_path() is None:  # pragma: no cover - CI installs it (.ci/run)
        pytest.fail("mosquitto is required: apt-get install mosquitto", pytrace=False)
    b = Broker(tmp_path / "mosquitto").start()
    yield b
    b.stop()


def make_config(tmp_path: Path, port: int = 1, **over: object) -> AgentConfig:
    mqtt_cfg: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "batch_linger_ms": 5.0,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    hub_cfg: dict[str, object] = {
        "url": "http://hub.test",
        "token": "tok",
        "backoff_min_s": 0.01,
        "backoff_max_s": 0.05,
        "interval_s": 0.05,
    }
    buffer_cfg: dict[str, object] = {"path": str(tmp_path / "buffer.db")}
    for k, v in over.items():
        section, _, key = k.partition("__")
        {"mqtt": mqtt_cfg, "hub": hub_cfg, "buffer": buffer_cfg}[section][key] = v
    return AgentConfig.model_validate(
        {
            "gateway_id": "gw-test",
            "mqtt": mqtt_cfg,
            "hub": hub_cfg,
            "buffer": buffer_cfg,
            "metrics": {"listen": ""},  # tests run side by side: no fixed port
        }
    )


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: object, qos: int = 1) -> None:
        if not isinstance(payload, bytes | str):
            payload = json.dumps(payload)
        assert isinstance(payload, bytes | str)
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    p = Publisher(broker.port)
    yield p
    p.close()

"""Fixtures for the agent's tests: a real mosquitto on a free port, configs, a paho publisher."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "max_inflight_messages 1000\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    b = Mosquitto(tmp_path).start()
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
        {"gateway_id": "gw-test", "mqtt": mqtt_cfg, "hub": hub_cfg, "buffer": buffer_cfg}
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
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(broker.port)
    yield p
    p.close()

"""Fixtures that start the real processes: mosquitto, edge-hub, edge-agent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devtools.stack import Agent, Broker, Hub, mosquitto_path

pytestmark = pytest.mark.integration

if mosquitto_path() is None:  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail(
        "mosquitto is required for the integration tests: apt-get install mosquitto", pytrace=False
    )


@dataclass
class Stack:
    workdir: Path
    broker: Broker
    hub: Hub
    agent: Agent
    gateway_token: str

    def logs(self) -> str:
        return "\n".join(p.proc.log_tail() for p in (self.broker, self.hub, self.agent))


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    started: list[Broker | Hub | Agent] = []
    try:
        broker = Broker(tmp_path).start()
        started.append(broker)
        hub = Hub(tmp_path)
        token = hub.add_gateway("gw-01", "plant-1")
        hub.start()
        started.append(hub)
        agent = Agent(
            tmp_path, gateway_id="gw-01", mqtt_port=broker.port, hub_url=hub.url, token=token
        )
        started.append(agent)
        agent.start()
        s = Stack(tmp_path, broker, hub, agent, token)
        yield s
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(s.logs())
    finally:
        # Whatever got started is stopped, also when the setup itself failed half-way.
        for part in reversed(started):
            part.proc.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


class Publisher:
    """A plain paho MQTT client at QoS 1, as a sensor gateway's PLC bridge would be."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}"
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(
        self, topic: str, payload: bytes | str | float | dict[str, object] | list[object]
    ) -> None:
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(stack: Stack) -> Iterator[Publisher]:
    pub = Publisher(stack.broker.port)
    yield pub
    pub.close()

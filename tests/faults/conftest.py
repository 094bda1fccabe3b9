"""The fault suite's harness: real mosquitto, hub and agent processes (devtools.stack), sensors
that keep publishing through every fault, and the exactly-once check at the end."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devtools.stack import Agent, Broker, Hub, mosquitto_path, wait_for
from tests.pg import PgServer

from .proxy import FaultProxy

if mosquitto_path() is None:  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail("mosquitto is required for the fault tests: apt-get install mosquitto")

GATEWAY = "gw-faults"
# An hour ago: inside any sane timestamp window of the agent and the hub.
T0 = float(int(time.time()) - 3600)

Reading = tuple[float, float]  # (ts, value) as the hub returns them


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection tests against real processes")


class SensorPublisher:
    """Sensors publishing at QoS 1 from a thread until stopped.

    A reading counts as published only once the broker's PUBACK for its message came back.
    Every reading is unique: value n, ts T0 + n/1000, n counting up across all sensors.
    """

    def __init__(
        self,
        port: int,
        *,
        sensors: int = 4,
        rate: float = 300.0,
        per_message: int = 1,
        window: int = 20,
    ) -> None:
        self.port = port
        self.keys = [f"l1/m{k}/s{k}" for k in range(sensors)]
        self.interval = 1.0 / rate
        self.per_message = per_message
        self.window = window
        # Publish order of every acked reading (key, ts, value), and the same by sensor.
        self.order: list[tuple[str, float, float]] = []
        self.n = 0
        self.messages = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()

    def start(self) -> SensorPublisher:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sensors-{os.getpid()}")
        client.max_inflight_messages_set(self.window)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self._client = client
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(client,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing; every message sent so far is acked (or the test fails)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self.error is not None:
            raise AssertionError(f"sensor publisher failed: {self.error!r}") from self.error

    pause = stop
    resume = start

    def published(self) -> dict[str, list[Reading]]:
        by_key: dict[str, list[Reading]] = {}
        with self._lock:
            for key, ts, value in self.order:
                by_key.setdefault(key, []).append((ts, value))
        return by_key

    def count(self) -> int:
        with self._lock:
            return len(self.order)

    def _run(self, client: mqtt.Client) -> None:
        pending: collections.deque[tuple[mqtt.MQTTMessageInfo, list[tuple[str, float, float]]]]
        pending = collections.deque()
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                key = self.keys[self.messages % len(self.keys)]
                readings = []
                for _ in range(self.per_message):
                    readings.append((key, T0 + self.n / 1000, float(self.n)))
                    self.n += 1
                body = [{"value": v, "ts": ts} for _, ts, v in readings]
                payload = json.dumps(body if self.per_message > 1 else body[0])
                info = client.publish(f"factory/{key}", payload, qos=1)
                self.messages += 1
                pending.append((info, readings))
                while len(pending) >= self.window:
                    self._settle(pending.popleft())
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()
            while pending:
                self._settle(pending.popleft())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def _settle(self, item: tuple[mqtt.MQTTMessageInfo, list[tuple[str, float, float]]]) -> None:
        info, readings = item
        info.wait_for_publish(20)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for message {info.mid}")
        with self._lock:
            self.order.extend(readings)


@dataclass
class Faults:
    """One scenario's processes. Everything started is stopped at the end of the test."""

    workdir: Path
    broker: Broker
    hub: Hub
    token: str
    proxy: FaultProxy | None = None
    agent: Agent | None = None
    sensors: SensorPublisher | None = None

    def make_agent(
        self, *, via_proxy: bool = False, settings: Mapping[str, Mapping[str, object]] = {}
    ) -> Agent:
        url = self.hub.url
        if via_proxy:
            self.proxy = FaultProxy(self.hub.port).start()
            url = self.proxy.url
        base: dict[str, dict[str, object]] = {
            # Small batches and a short timeout: many requests, so faults land mid-request.
            "hub": {"batch_max_readings": 200, "timeout_s": 2.0, "backoff_max_s": 0.5},
            "mqtt": {"batch_max": 200},
        }
        for section, values in settings.items():
            base.setdefault(section, {}).update(values)
        self.agent = Agent(
            self.workdir,
            gateway_id=GATEWAY,
            mqtt_port=self.broker.port,
            hub_url=url,
            token=self.token,
            settings=base,
        )
        return self.agent

    def publish(
        self, *, rate: float = 300.0, per_message: int = 1, window: int = 20
    ) -> SensorPublisher:
        self.sensors = SensorPublisher(
            self.broker.port, rate=rate, per_message=per_message, window=window
        ).start()
        return self.sensors

    def logs(self) -> str:
        parts = [self.broker.proc, self.hub.proc] + ([self.agent.proc] if self.agent else [])
        return "\n".join(p.log_tail(60) for p in parts)

    def assert_exactly_once(self, timeout: float = 60.0) -> dict[str, int]:
        """Every reading the broker acked is in the hub once: 0 lost, 0 doubled (count and
        content, per sensor). Returns the per-sensor counts."""
        assert self.sensors is not None
        published = self.sensors.published()
        expected = {k: len(v) for k, v in published.items()}
        last: dict[str, int] = {}

        def arrived() -> bool:
            nonlocal last
            last = self.hub.counts_by_sensor()
            return last == expected

        with contextlib.suppress(TimeoutError):
            wait_for("the hub to hold every reading", arrived, timeout=timeout, every=0.5)
        stored = self.hub.readings_by_sensor()
        problems = []
        for key in sorted(set(published) | set(stored)):
            want = collections.Counter(published.get(key, []))
            got = collections.Counter(stored.get(key, []))
            lost = want - got
            doubled = got - want
            if lost or doubled:
                problems.append(
                    f"{key}: published {sum(want.values())}, hub has {sum(got.values())}; "
                    f"lost {sum(lost.values())} (e.g. {sorted(lost)[:3]}), "
                    f"extra/doubled {sum(doubled.values())} (e.g. {sorted(doubled)[:3]})"
                )
        assert not problems, "\n".join(problems) + "\n" + self.logs()
        assert sum(expected.values()) > 0
        return expected


@pytest.fixture(scope="session")
def fault_pg(pg_server: PgServer) -> PgServer:
    """The session's PostgreSQL server (tests/conftest.py): each scenario makes its database."""
    return pg_server


@pytest.fixture
def faults(tmp_path: Path) -> Iterator[Faults]:
    yield from _faults(Hub(tmp_path), tmp_path)


@pytest.fixture
def faults_pg_workers(tmp_path: Path, fault_pg: PgServer) -> Iterator[Faults]:
    """The same scenario harness with the hub on PostgreSQL and two worker processes."""
    hub = Hub(tmp_path, database=fault_pg.create_database())
    with open(hub.config, "a") as f:
        f.write("workers = 2\n")
    yield from _faults(hub, tmp_path)


def _faults(hub: Hub, tmp_path: Path) -> Iterator[Faults]:
    broker = Broker(tmp_path).start()
    f: Faults | None = None
    try:
        token = hub.add_gateway(GATEWAY, "plant-faults")
        hub.start()
        f = Faults(tmp_path, broker, hub, token)
        yield f
    finally:
        if f is not None:
            if f.sensors is not None:
                with contextlib.suppress(AssertionError):
                    f.sensors.stop()
            if f.agent is not None:
                f.agent.proc.stop()
            if f.proxy is not None:
                f.proxy.stop()
        hub.proc.stop()
        broker.proc.stop()

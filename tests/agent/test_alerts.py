"""Edge alerting end to end in one agent process, against a real mosquitto: alerts with no hub at
all, one alert per excursion, rules that survive a restart with the hub down, and a threshold
changed at the hub applied within one sync cycle (docs/reliability.md, "The edge decides alone")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import service
from agent.buffer import Buffer, Reading
from agent.config import AgentConfig, RuleConfig
from agent.rules import Alerting, HubConfig, HubSensorRule, Rules, RulesSync
from devtools.stack import Broker
from shared.wire import Batch, decode_batch

from .conftest import Publisher, free_port, make_config

KEY = "l1/m1/temp"
TOPIC = "factory/l1/m1/temp"


class AlertListener:
    """A local HMI: subscribes to alerts/# and keeps (arrival time, topic, payload)."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[float, str, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hmi-{time.time_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe("alerts/#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.got.append(
            (time.monotonic(), m.topic, json.loads(m.payload))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def events(self) -> list[str]:
        return [p["event"] for _, _, p in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hmi(broker: Broker) -> Iterator[AlertListener]:
    listener = AlertListener(broker.port)
    yield listener
    listener.close()


class FakeHub:
    """A stdlib http.server hub: /api/v1/ingest (answers config_version) and the config."""

    def __init__(self) -> None:
        self.version = 1
        self.sensors: list[dict[str, Any]] = []
        self.batches: list[Batch] = []
        self.config_gets = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                batch = decode_batch(body, self.headers.get("Content-Encoding"))
                hub.batches.append(batch)
                self._reply(
                    {
                        "data": {
                            "accepted": len(batch.readings),
                            "duplicates": 0,
                            "config_version": hub.version,
                        },
                        "meta": {},
                    }
                )

            def do_GET(self) -> None:
                hub.config_gets += 1
                self._reply(
                    {
                        "data": {
                            "gateway_id": "gw-test",
                            "version": hub.version,
                            "sensors": hub.sensors,
                        }
                    }
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[tuple[int, str, float | None]]:
        return [(a.id, a.key, a.closed_at) for b in self.batches for a in b.alerts]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    h = FakeHub()
    yield h
    h.stop()


def config(
    tmp_path: Path, broker: Broker, hub_url: str | None = None, **rules: RuleConfig
) -> AgentConfig:
    url = hub_url or f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = make_config(tmp_path, broker.port, hub__url=url, hub__interval_s=0.2)
    return cfg.model_copy(update={"rules": {k.replace("__", "/"): r for k, r in rules.items()}})


def db_state(cfg: AgentConfig) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(cfg.buffer.path)) as db:
        return dict(db.execute("SELECT k, v FROM state").fetchall())


def db_alerts(cfg: AgentConfig) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(cfg.buffer.path)) as db:
        return db.execute(
            "SELECT id, key, breach_type, closed_at IS NOT NULL, version > synced_version"
            " FROM alerts ORDER BY id"
        ).fetchall()


async def wait_until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def agent(cfg: AgentConfig) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(cfg, stopping))
    try:
        await wait_until(
            lambda: Path(cfg.buffer.path).exists() and db_state(cfg).get("mqtt_connected") == "1"
        )
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 15)


async def test_alert_goes_out_on_mqtt_with_no_hub(
    tmp_path: Path, broker: Broker, publisher: Publisher, hmi: AlertListener
) -> None:
    cfg = config(tmp_path, broker, l1__m1__temp=RuleConfig(min=15.0, max=85.0))
    async with agent(cfg):
        publisher.publish(TOPIC, {"value": 50.0})
        t0 = time.monotonic()
        publisher.publish(TOPIC, {"value": 95.0, "ts": 1732270000.5})
        await wait_until(lambda: len(hmi.got) >= 1)
        arrived, topic, body = hmi.got[0]
    # A hang detector with room for a loaded machine, not a latency figure: without a hub the
    # alert still goes out at once from ingest (no sync retry, no hub timeout in its way).
    assert arrived - t0 < 5.0
    assert topic == "alerts/l1/m1/temp"
    assert body["event"] == "open" and body["key"] == KEY and body["gateway_id"] == "gw-test"
    assert (body["rule"], body["breach_type"], body["severity"]) == (
        "threshold",
        "above_maximum",
        "high",
    )
    assert (body["threshold_value"], body["value"], body["ts"]) == (85.0, 95.0, 1732270000.5)
    assert body["closed_at"] is None and body["reading_seq"] == 2
    # stored in the outbox for the hub, not synced (there is no hub)
    assert db_alerts(cfg) == [(body["id"], KEY, "above_maximum", 0, 1)]


async def test_excursion_of_ten_readings_is_one_open_and_one_close(
    tmp_path: Path, broker: Broker, publisher: Publisher, hmi: AlertListener
) -> None:
    cfg = config(tmp_path, broker, l1__m1__temp=RuleConfig(max=85.0, deadband=5.0, clear_count=3))
    values = (
        [70.0] * 3
        + [88.0, 90.0, 89.0, 86.0, 84.0, 82.0, 88.0, 90.0, 87.0, 86.0]
        + [79.0, 81.0, 79.0, 78.0, 77.0, 70.0]
    )
    t0 = float(int(time.time()) - 100)  # recent: the agent's timestamp window takes it
    async with agent(cfg):
        for i, v in enumerate(values):
            publisher.publish(TOPIC, {"value": v, "ts": t0 + i})
        # A marker after the excursion: one more breach. Readings and alert events keep their
        # order, so once its "open" is here every event of the excursion is too, and anything
        # more the excursion raised would sit before it.
        publisher.publish(TOPIC, {"value": 99.0, "ts": t0 + len(values)})
        await wait_until(lambda: len(hmi.got) >= 3)
    assert hmi.events() == ["open", "close", "open"]
    (_, _, opened), (_, _, closed), (_, _, marker) = hmi.got
    assert opened["id"] == closed["id"] != marker["id"]
    assert (opened["ts"], closed["opened_at"], closed["closed_at"]) == (t0 + 3, t0 + 3, t0 + 17)
    assert closed["value"] == 90.0  # the worst while open
    assert marker["ts"] == t0 + len(values)
    assert db_alerts(cfg) == [
        (opened["id"], KEY, "above_maximum", 1, 1),
        (marker["id"], KEY, "above_maximum", 0, 1),
    ]


async def test_hub_rules_survive_restart_with_hub_down(
    tmp_path: Path, broker: Broker, publisher: Publisher, hmi: AlertListener, hub: FakeHub
) -> None:
    hub.version = 3
    hub.sensors = [{"key": KEY, "min": None, "max": 50.0, "deadband": 1.0}]
    cfg = config(tmp_path, broker, hub.url)  # no local rules at all
    async with agent(cfg):
        await wait_until(lambda: db_state(cfg).get("rules_version") == "3")
    hub.stop()
    # Restart: the hub is gone; the rules it sent last are still in force.
    async with agent(cfg):
        t0 = time.monotonic()
        publisher.publish(TOPIC, {"value": 60.0})
        await wait_until(lambda: len(hmi.got) >= 1)
    assert hmi.got[0][0] - t0 < 5.0  # as above: a hang detector, not a latency figure
    assert (hmi.got[0][2]["threshold_value"], hmi.got[0][2]["value"]) == (50.0, 60.0)


async def test_threshold_changed_at_hub_applies_within_one_sync_cycle(
    tmp_path: Path, broker: Broker, publisher: Publisher, hmi: AlertListener, hub: FakeHub
) -> None:
    hub.sensors = [{"key": KEY, "min": None, "max": 100.0, "deadband": None}]
    cfg = config(tmp_path, broker, hub.url, **{"+__+__temp": RuleConfig(max=500.0, clear_count=2)})
    async with agent(cfg):
        await wait_until(lambda: db_state(cfg).get("rules_version") == "1")
        ts0 = float(int(time.time()) - 100)
        publisher.publish(TOPIC, {"value": 60.0, "ts": ts0 + 1})
        await wait_until(lambda: any(b.readings for b in hub.batches))
        assert hmi.got == []
        # An operator lowers the threshold at the hub.
        hub.version, hub.sensors = 2, [{"key": KEY, "min": None, "max": 50.0, "deadband": 2.0}]
        posts = len(hub.batches)
        publisher.publish(TOPIC, {"value": 40.0, "ts": ts0 + 2})  # the next sync cycle
        # Counted in sync cycles, not seconds (a loaded machine stretches every cycle): the
        # new rules are in once the hub has answered at most two more batches, the one that
        # names version 2 and the one in flight meanwhile. The 300 s refresh timer
        # (alerts.refresh_s) cannot be what fetched them.
        await wait_until(lambda: db_state(cfg).get("rules_version") == "2", within=30)
        assert len(hub.batches) <= posts + 2
        publisher.publish(TOPIC, {"value": 60.0, "ts": ts0 + 3})
        await wait_until(lambda: hmi.events() == ["open"])
        # clear_count (2) from agent.toml's pattern, deadband (2) from the hub: 49 is in the
        # hysteresis zone, then two readings <= 48 close it.
        for ts, v in [(ts0 + 4, 49.0), (ts0 + 5, 48.0), (ts0 + 6, 47.0)]:
            publisher.publish(TOPIC, {"value": v, "ts": ts})
        await wait_until(lambda: hmi.events() == ["open", "close"])
        # The hub gets the alert when it opens and again when it closes; then it is gone.
        alert_id = hmi.got[0][2]["id"]
        await wait_until(lambda: (alert_id, KEY, ts0 + 6) in hub.alerts())
        await wait_until(lambda: db_alerts(cfg) == [])
    sent = hub.alerts()
    assert sent[0] == (alert_id, KEY, None) and sent[-1] == (alert_id, KEY, ts0 + 6)
    assert len(sent) <= 3  # open (+ maybe open again if it changed in flight) + close


def test_rules_overlay_and_persistence(tmp_path: Path) -> None:
    cfg = make_config(tmp_path).model_copy(
        update={
            "rules": {
                "+/+/temp": RuleConfig(
                    min=0.0, max=90.0, deadband=1.0, clear_count=4, max_rate=2.0
                ),
                "l1/m1/rpm": RuleConfig(max=3000.0),
            }
        }
    )
    buffer = Buffer(cfg.buffer.path)
    rules = Rules(cfg, buffer)
    assert rules.version == 0 and set(rules.effective()) == {"+/+/temp", "l1/m1/rpm"}
    changed = rules.apply_hub(
        HubConfig(
            "gw-test",
            7,
            [
                HubSensorRule(KEY, None, 80.0, None),  # max from the hub, the rest from agent.toml
                HubSensorRule("l1/m1/rpm", None, None, 5.0),  # no bounds at the hub: keep 3000
                HubSensorRule("l2/m1/new", 1.0, 2.0, 0.9),  # deadband too wide for 1..2: dropped
                HubSensorRule("bad", 1.0, 2.0, None),  # not a sensor key: ignored
            ],
        )
    )
    assert changed and not rules.apply_hub(HubConfig("gw-test", 7, rules.hub))
    eff = rules.effective()
    assert eff[KEY].to_dict() == {
        "min": None,
        "max": 80.0,
        "deadband": 1.0,
        "clear_count": 4,
        "max_rate": 2.0,
    }
    assert (eff["l1/m1/rpm"].max, eff["l1/m1/rpm"].deadband) == (3000.0, 5.0)
    assert (eff["l2/m1/new"].min, eff["l2/m1/new"].deadband) == (1.0, 0.0)
    assert "bad" not in eff
    again = Rules(cfg, buffer)  # what a restart sees
    assert again.version == 7 and again.effective() == eff
    buffer.close()


def test_open_alert_survives_restart_as_one_alert(tmp_path: Path) -> None:
    cfg = make_config(tmp_path).model_copy(
        update={"rules": {KEY: RuleConfig(max=10.0, clear_count=2)}}
    )
    buffer = Buffer(cfg.buffer.path)
    alerting = Alerting(cfg, buffer, Rules(cfg, buffer))

    def feed(*values: float) -> list[str]:
        rs = [Reading(KEY, float(i), v, None, 0.0) for i, v in enumerate(values)]
        return [a.event for a in buffer.append(rs, derive_alerts=alerting.derive).alerts]

    assert feed(10.5, 10.8) == ["open"]
    buffer.close()
    buffer = Buffer(cfg.buffer.path)
    alerting = Alerting(cfg, buffer, Rules(cfg, buffer))
    assert feed(10.9, 1.0) == []  # the same excursion, one clear reading of two
    assert feed(1.0, 1.0) == ["close"]
    [row] = buffer.claim_alerts(10)
    assert (row.closed_at, row.value, row.reading_seq) == (0.0, 10.9, 1)
    # a rule removed while the agent was down closes the alert at start
    assert feed(20.0) == ["open"]
    buffer.close()
    buffer = Buffer(cfg.buffer.path)
    Alerting(
        cfg.model_copy(update={"rules": {}}),
        buffer,
        Rules(cfg.model_copy(update={"rules": {}}), buffer),
    )
    assert buffer.open_alerts() == []
    buffer.ack_alerts([(a.id, a.version) for a in buffer.claim_alerts(10)])
    assert buffer.claim_alerts(10) == [] and buffer.open_alerts() == []
    buffer.close()


def _config_answer(version: int) -> httpx.Response:
    sensors = [{"key": KEY, "min": None, "max": 50.0, "deadband": None}]
    return httpx.Response(
        200, json={"data": {"gateway_id": "gw-test", "version": version, "sensors": sensors}}
    )


async def test_rules_fetch_retries_with_backoff_until_the_hub_answers(tmp_path: Path) -> None:
    """Refused, 503 and an unreadable body are each retried; the first usable answer ends it."""
    cfg = make_config(tmp_path)  # backoff 0.01 .. 0.05 s
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503, json={"error": {"code": "unavailable"}})
        if len(seen) == 3:
            return httpx.Response(200, content=b"not json")
        return _config_answer(5)

    buffer = Buffer(cfg.buffer.path)
    rules = Rules(cfg, buffer)
    sync = RulesSync(cfg, rules, Alerting(cfg, buffer, rules))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await sync.fetch(http, asyncio.Event())
    assert (len(seen), sync.fetched, rules.version) == (4, 1, 5)
    assert rules.effective()[KEY].max == 50.0
    buffer.close()


async def test_rules_fetch_backoff_cut_short_by_a_new_version_and_ended_by_stop(
    tmp_path: Path,
) -> None:
    """With a backoff of 300 s, only a new config_version can bring the second request in
    time, and stopping ends the retry without a third."""
    cfg = make_config(tmp_path, hub__backoff_min_s=300.0, hub__backoff_max_s=300.0)
    seen: list[httpx.Request] = []
    arrived = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        arrived.set()
        raise httpx.ConnectError("refused", request=request)

    buffer = Buffer(cfg.buffer.path)
    rules = Rules(cfg, buffer)
    sync = RulesSync(cfg, rules, Alerting(cfg, buffer, rules))
    stopping = asyncio.Event()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        task = asyncio.create_task(sync.fetch(http, stopping))
        await asyncio.wait_for(arrived.wait(), 10)
        arrived.clear()
        sync.on_config_version(rules.version + 1)  # the hub has newer rules
        await asyncio.wait_for(arrived.wait(), 10)
        assert len(seen) == 2
        stopping.set()
        assert await asyncio.wait_for(task, 10) is False
    assert len(seen) == 2 and sync.fetched == 0
    buffer.close()

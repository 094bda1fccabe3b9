"""Sparkplug B end to end, against an edge node we did not write: pysparkplug's EdgeNode and
Device (tests/integration/sparkplug_peer.py) publish births and data through the real
mosquitto to the real agent, answer its rebirth request, and the readings reach the real hub
exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.sparkplug.encode import MetricSpec, encode_payload
from agent.sparkplug.schema import DataType
from devtools.stack import PY, REPO, Agent, Broker, Hub, free_port, wait_for

pytestmark = pytest.mark.integration

# pysparkplug 0.6 needs paho-mqtt < 2, the agent paho-mqtt 2: the peer gets its own
# directory of packages, on its PYTHONPATH only.
PEER_REQUIREMENT = "pysparkplug==0.6.1"
PEER_SCRIPT = Path(__file__).with_name("sparkplug_peer.py")
GROUP, NODE, DEVICE = "plant7", "edge1", "pump1"


@pytest.fixture(scope="session")
def peer_path() -> Path:
    target = Path(sys.prefix) / "sparkplug-peer"
    if not (target / "pysparkplug-0.6.1.dist-info").is_dir():
        subprocess.run(
            [PY, "-m", "pip", "install", "--quiet", "--target", str(target), PEER_REQUIREMENT],
            check=True,
        )
    return target


class Peer:
    """The pysparkplug edge node in its own process, driven over stdin."""

    def __init__(self, path: Path, port: int, log: Path) -> None:
        self.log = log
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.popen = subprocess.Popen(
            self._argv(port),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115 - the child's for its lifetime
            env={**os.environ, "PYTHONPATH": str(path)},
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    @staticmethod
    def _argv(port: int) -> list[str]:
        where = ["--port", str(port), "--group", GROUP, "--node", NODE, "--device", DEVICE]
        return [PY, str(PEER_SCRIPT), *where]

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.events.put(json.loads(line))

    def expect(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"peer: no {event!r} event; its log:\n{self.log.read_text()}"
                ) from None
            if got["event"] == event:
                return got

    def send(self, command: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()
        self.expect("sent")

    def kill(self) -> None:
        """SIGKILL: the broker publishes the node's will, its NDEATH."""
        self.popen.kill()
        self.popen.wait(10)

    def close(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self.send_quit()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def send_quit(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write("quit\n")
        self.popen.stdin.flush()


class Observer:
    """A plain MQTT client that sees every Sparkplug message on the broker, ours included."""

    def __init__(self, port: int) -> None:
        self.seen: list[str] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sp-observer")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("spBv1.0/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.seen.append(msg.topic)
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Broker, Hub, str]]:
    broker = Broker(tmp_path).start()
    hub = Hub(tmp_path)
    token = hub.add_gateway("gw-sp", "plant-7")
    hub.start()
    try:
        yield broker, hub, token
    finally:
        hub.stop()
        broker.stop()


def _readings(hub: Hub) -> dict[str, list[tuple[float, float]]]:
    """Every reading at the hub by sensor key, (ts, value) sorted (a few hundred at most)."""
    out: dict[str, list[tuple[float, float]]] = {}
    with hub.client() as c:
        for sensor in c.get("/api/v1/sensors").raise_for_status().json()["data"]:
            rows = c.get(f"/api/v1/sensors/{sensor['id']}/readings", params={"limit": 1000})
            data = rows.raise_for_status().json()["data"]
            out[sensor["key"]] = sorted((r["ts"], r["value"]) for r in data)
    return out


def _dead_letters(agent: Agent) -> list[tuple[str, str]]:
    con = sqlite3.connect(f"file:{agent.buffer}?mode=ro", uri=True, timeout=5)
    try:
        return [(str(t), str(r)) for t, r in con.execute("SELECT topic, reason FROM dead_letters")]
    finally:
        con.close()


def test_an_independent_edge_node_reaches_the_hub_exactly_once(
    tmp_path: Path, parts: tuple[Broker, Hub, str], peer_path: Path
) -> None:
    broker, hub, token = parts
    observer = Observer(broker.port)
    # The node is born before the agent runs: the agent misses NBIRTH/DBIRTH (QoS 0, not
    # retained), as after any agent restart, and must ask for a rebirth.
    peer = Peer(peer_path, broker.port, tmp_path / "peer.log")
    agent = Agent(
        tmp_path,
        gateway_id="gw-sp",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token,
        settings={"sparkplug": {"enabled": True, "rebirth_min_interval_s": 0.5}},
    )
    try:
        agent.start()
        t0 = int(time.time() * 1000)
        # DATA before its birth: the agent asks for a rebirth (NCMD), the node answers with
        # births that carry this value too (its current one).
        peer.send(f"ndata 21.5 {t0}")
        peer.expect("rebirth")
        assert f"spBv1.0/{GROUP}/NCMD/{NODE}" in observer.seen
        temps = [(t0, 21.5)] + [(t0 + 10 * i, 22.0 + i) for i in range(1, 31)]
        pressures = [(t0 + 10 * i + 5, 3.0 + i / 4) for i in range(30)]
        for (ts, v), (pts, pv) in zip(temps[1:], pressures, strict=False):
            peer.send(f"ndata {v} {ts}")
            peer.send(f"ddata {pv} {pts}")
        # An undecodable payload on a Sparkplug topic: a dead letter with its reason.
        observer.publish(f"spBv1.0/{GROUP}/NDATA/{NODE}", b'{"value": 1}')

        def node(m: str) -> str:
            return f"{GROUP}/{NODE}/{m}"

        def dev(m: str) -> str:
            return f"{GROUP}/{DEVICE}/{m}"

        expected_counts = {
            node("temp"): len(temps),
            node("speed"): 1,
            node("running"): 1,
            node("Line.rate"): 1,
            dev("pressure"): 1 + len(pressures),
            dev("count"): 1,
        }
        counts: dict[str, int] = {}

        def arrived() -> bool:
            counts.clear()
            counts.update(hub.counts_by_sensor())
            return counts == expected_counts

        try:
            wait_for("every Sparkplug reading at the hub", arrived, timeout=60)
        except TimeoutError:
            raise AssertionError(
                f"hub has {counts}, expected {expected_counts}\n{agent.proc.log_tail()}"
            ) from None
        wait_for("the agent's backlog to drain", lambda: agent.status()["backlog"] == 0, 30)
        got = _readings(hub)
        assert {k: len(v) for k, v in got.items()} == expected_counts  # nothing doubled
        # Metric timestamps (ms) are the readings' ts; the string metric is not a reading.
        assert [(round(ts * 1000), v) for ts, v in got[node("temp")]] == temps
        assert [(round(ts * 1000), round(v, 4)) for ts, v in got[dev("pressure")][1:]] == [
            (ts, round(v, 4)) for ts, v in pressures
        ]
        assert [v for _, v in got[node("speed")]] == [-7.0]
        assert [v for _, v in got[node("running")]] == [1.0]
        assert [v for _, v in got[dev("count")]] == [float(-(2**40))]
        assert node("label") not in got

        dead = _dead_letters(agent)
        assert [t for t, _ in dead] == [f"spBv1.0/{GROUP}/NDATA/{NODE}"]
        assert "not a Sparkplug B payload" in dead[0][1]
        assert agent.status()["dead_letters"] == 1
    finally:
        peer.close()
        agent.stop()
        observer.close()


def test_primary_host_state_is_retained_online_and_the_will_says_offline(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-sp",
        mqtt_port=broker.port,
        hub_url=f"http://127.0.0.1:{free_port()}",
        token="unused",
        settings={"sparkplug": {"enabled": True, "primary_host_id": "edge-gw-sp"}},
    )
    states: queue.Queue[tuple[dict[str, Any], bool]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sp-state-watch")
    client.on_message = lambda _c, _u, m: states.put((json.loads(m.payload), m.retain))
    try:
        agent.start()
        # Subscribing after the agent announced: only a retained message can reach us.
        client.connect("127.0.0.1", broker.port)
        client.subscribe("spBv1.0/STATE/edge-gw-sp", qos=1)
        client.loop_start()
        online, retained = states.get(timeout=20)
        assert online["online"] is True and retained
        agent.proc.kill()  # no DISCONNECT: the broker publishes the will
        offline, _ = states.get(timeout=20)
        assert offline == {"online": False, "timestamp": online["timestamp"]}
    finally:
        client.loop_stop()
        client.disconnect()
        agent.stop()
        broker.stop()


def _stale(hub: Hub) -> dict[str, bool]:
    with hub.client() as c:
        sensors = c.get("/api/v1/sensors").raise_for_status().json()["data"]
    return {s["key"]: s["stale"] for s in sensors}


def test_ndeath_of_the_session_marks_the_nodes_sensors_stale_until_the_next_birth(
    tmp_path: Path, parts: tuple[Broker, Hub, str], peer_path: Path
) -> None:
    broker, hub, token = parts
    observer = Observer(broker.port)
    agent = Agent(
        tmp_path,
        gateway_id="gw-sp",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token,
        settings={"sparkplug": {"enabled": True}},
    )
    keys = {
        f"{GROUP}/{NODE}/temp",
        f"{GROUP}/{NODE}/speed",
        f"{GROUP}/{NODE}/running",
        f"{GROUP}/{NODE}/Line.rate",
        f"{GROUP}/{DEVICE}/pressure",
        f"{GROUP}/{DEVICE}/count",
    }
    peer: Peer | None = None
    try:
        agent.start()
        peer = Peer(peer_path, broker.port, tmp_path / "peer.log")  # born with bdSeq 0
        wait_for("the births at the hub", lambda: set(_stale(hub)) == keys, timeout=30)
        assert not any(_stale(hub).values())

        # A late NDEATH of another session (bdSeq 7) changes nothing: data after it is
        # stored, and no sensor turns stale.
        late = encode_payload([MetricSpec("bdSeq", 7, DataType.Int64)])
        observer.publish(f"spBv1.0/{GROUP}/NDEATH/{NODE}", late)
        peer.send(f"ndata 99.5 {int(time.time() * 1000)}")
        wait_for(
            "the reading after the late NDEATH",
            lambda: hub.counts_by_sensor().get(f"{GROUP}/{NODE}/temp") == 2,
            timeout=30,
        )
        assert not any(_stale(hub).values())

        # The node dies: the broker publishes its will, the NDEATH with the birth's bdSeq.
        peer.kill()
        wait_for("every sensor of the node stale", lambda: all(_stale(hub).values()), 30)
        assert set(_stale(hub)) == keys

        # Born again (a new process, a new session): fresh.
        peer = Peer(peer_path, broker.port, tmp_path / "peer2.log")
        wait_for("the node's sensors fresh", lambda: not any(_stale(hub).values()), 30)
    finally:
        if peer is not None:
            peer.close()
        agent.stop()
        observer.close()

"""Row: Sparkplug B messages/s through the agent against the same readings as JSON, in the
same run.

One feed of readings, two encodings: NDATA messages (one aliased Double metric with its
timestamp, seq 1, 2, ... wrapping at 256, after an NBIRTH) on ``spBv1.0/bench/NDATA/node1``,
and JSON objects ``{"value", "ts"}`` on ``factory/l1/m1/s1``. Each feed goes to a fresh
mosquitto, queued at QoS 1 for the agent's persistent session while the agent is stopped;
then the agent starts and is timed from its first committed reading to its last (the hub
URL points at a closed port, so nothing is synced away meanwhile). Both feeds, same run.

``python -m bench.sparkplug publish PORT FEED`` is that publisher.
"""

from __future__ import annotations

import pickle
import random
import sys
from pathlib import Path

from agent.sparkplug.encode import MetricSpec, encode_payload
from agent.sparkplug.schema import DataType
from bench.common import Row, wait_count
from devtools.stack import Agent, Broker, Proc, free_port

T0_MS = 1_764_000_000_000
SP_TOPIC = "spBv1.0/bench/NDATA/node1"


def _feeds(n: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], int]:
    """(the Sparkplug messages, the JSON messages, readings the Sparkplug feed makes)."""
    rng = random.Random(7)
    values = [round(rng.gauss(50, 5), 3) for _ in range(n)]
    birth = encode_payload(
        [
            MetricSpec("bdSeq", 0, DataType.Int64),
            MetricSpec("temp", 50.0, DataType.Double, alias=1, timestamp_ms=T0_MS - 1),
        ],
        seq=0,
        timestamp_ms=T0_MS - 1,
    )
    sp = [("spBv1.0/bench/NBIRTH/node1", birth)]
    js = []
    for i, v in enumerate(values):
        ts = T0_MS + i
        sp.append(
            (
                SP_TOPIC,
                encode_payload([MetricSpec(alias=1, value=v, timestamp_ms=ts)], seq=(i + 1) % 256),
            )
        )
        js.append(("factory/l1/m1/s1", f'{{"value": {v}, "ts": {ts / 1000:.3f}}}'.encode()))
    return sp, js, n + 1  # the birth's value is a reading too


def _run(workdir: Path, name: str, feed: list[tuple[str, bytes]], readings: int) -> float:
    """Messages/s the agent takes from a broker queue holding the whole feed."""
    wd = workdir / name
    wd.mkdir()
    feed_path = wd / "feed.pickle"
    feed_path.write_bytes(pickle.dumps(feed))
    broker = Broker(wd).start()
    agent = Agent(
        wd,
        gateway_id="gw-bench",
        mqtt_port=broker.port,
        hub_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: the backlog stays put
        token="unused",
        settings={"sparkplug": {"enabled": True}},
    )
    pub = Proc(
        f"publisher-{name}",
        [sys.executable, "-m", "bench.sparkplug", "publish", str(broker.port), str(feed_path)],
        wd,
    )
    try:
        # The agent's persistent session exists, then the broker queues the whole feed for it
        # while it is stopped: what is timed is the agent alone, not a Python publisher.
        agent.start()
        agent.stop()
        pub.start()
        assert pub.popen is not None
        if pub.popen.wait(600) != 0:
            raise RuntimeError(f"publisher failed:\n{pub.log_tail()}")
        agent.start(wait_subscribed=False)
        # From the first reading committed to the last: process start-up is not ingest.
        first = wait_count(agent.buffer, "readings", 1, timeout=60)
        last = wait_count(agent.buffer, "readings", readings, timeout=600)
        return (len(feed) - 1) / (last - first)
    finally:
        pub.stop()
        agent.stop()
        broker.stop()


def run(workdir: Path, n: int, rounds: int = 3) -> list[Row]:
    sp_feed, js_feed, sp_readings = _feeds(n)
    sp_rates: list[float] = []
    js_rates: list[float] = []
    for r in range(rounds):
        # Alternating which goes first: on a shared box the load drifts within a round.
        runs = [
            ("json", js_feed, len(js_feed), js_rates),
            ("sparkplug", sp_feed, sp_readings, sp_rates),
        ]
        for name, feed, readings, rates in runs if r % 2 == 0 else runs[::-1]:
            rates.append(_run(workdir, f"{name}-{r}", feed, readings))
    return [
        Row(
            "Sparkplug B ingest (NDATA -> committed)",
            max(sp_rates),
            "messages/s",
            "the same readings as JSON",
            max(js_rates),
            ">= 0.8x",
            note=f"{n:,} queued QoS 1 messages, one aliased metric each; best of {rounds}",
            extra={"sparkplug_rates": sp_rates, "json_rates": js_rates},
        )
    ]


def _publish(port: int, feed_path: Path) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    feed: list[tuple[str, bytes]] = pickle.loads(feed_path.read_bytes())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}")
    # Far more in flight than the broker lets through to the agent: the publisher is never
    # what the row measures.
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # In windows, so the client's own queue stays small; the broker queues it all.
    window = 2000
    for start in range(0, len(feed), window):
        infos = [client.publish(t, body, qos=1) for t, body in feed[start : start + window]]
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise SystemExit(f"publish failed: {mqtt.error_string(info.rc)}")
        infos[-1].wait_for_publish(600)
    for info in infos:
        info.wait_for_publish(600)
    client.loop_stop()
    client.disconnect()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "publish":
        _publish(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit("usage: python -m bench.sparkplug publish PORT FEED")

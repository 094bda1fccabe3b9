"""``just demo``: the whole system on this machine, with a live summary line.

broker (mosquitto if installed, else an embedded amqtt) -> edge-sim -> edge-agent -> edge-hub
(+ anomaly-detector). Everything runs under ./.demo/ (wiped at each start). Ctrl-C stops all
of it cleanly, newest first.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from typing import Any

from agent.buffer import read_status
from devtools.demo_alarm import AlarmStory
from devtools.stack import (
    PY,
    REPO,
    Agent,
    Broker,
    Detector,
    EmbeddedBroker,
    Hub,
    Proc,
    mosquitto_path,
)

DEMO_DIR = REPO / ".demo"


class _Stop(Exception):
    pass


def _on_signal(_sig: int, _frame: Any) -> None:
    raise _Stop


def _hub_total(hub: Hub) -> int:
    with hub.client() as c:
        text = c.get("/metrics").text
    # Readings newly stored since the hub started (a Prometheus counter).
    prefix = 'edge_hub_ingest_readings_total{result="accepted"}'
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))
    )


def main() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    parts: list[Any] = []
    try:
        if mosquitto_path():
            broker: Broker | EmbeddedBroker = Broker(DEMO_DIR).start()
            broker_name = "mosquitto"
        else:
            broker = EmbeddedBroker(DEMO_DIR).start()
            broker_name = "embedded amqtt broker (install mosquitto for the real one)"
        parts.append(broker)
        detector = Detector(DEMO_DIR).start()
        parts.append(detector)
        hub = Hub(DEMO_DIR, anomaly_url=detector.url)
        token = hub.add_gateway("gw-demo", "demo-factory")
        read_token = hub.read_token
        hub.start()
        parts.append(hub)
        agent = Agent(
            DEMO_DIR, gateway_id="gw-demo", mqtt_port=broker.port, hub_url=hub.url, token=token
        )
        agent.start()
        parts.append(agent)
        sim = Proc(
            "edge-sim",
            [
                PY,
                "-m",
                "agent.sim",
                "--port",
                str(broker.port),
                "--rate",
                "200",
                "--duration",
                "86400",
                "--spike-share",
                "0.01",
                "--malformed-share",
                "0.01",
            ],
            DEMO_DIR,
        )
        sim.start()
        parts.append(sim)
        # A rule, a spike, an alert that opens, is acknowledged and clears (devtools.demo_alarm).
        story = AlarmStory(hub, broker.port)
        story.start()

        print(
            f"""
factory-edge demo is running (logs and data in {DEMO_DIR})
  broker            mqtt://127.0.0.1:{broker.port}  ({broker_name})
  anomaly-detector  {detector.url}
  hub               {hub.url}   (console: {hub.url}/  API docs: {hub.url}/docs)
  read token        {read_token}

  try:  curl -s -H "Authorization: Bearer {read_token}" {hub.url}/api/v1/sensors | head -c 600
        {PY} -m agent status --config {agent.config}

Ctrl-C stops everything.
""",
            flush=True,
        )
        last_total, last_t = _hub_total(hub), time.monotonic()
        while True:
            time.sleep(1.0)
            status = read_status(agent.buffer, None, None)
            total, t = _hub_total(hub), time.monotonic()
            rate = (total - last_total) / (t - last_t)
            last_total, last_t = total, t
            print(
                f"\r{time.strftime('%H:%M:%S')}  in {rate:7.1f} readings/s   "
                f"backlog {status.backlog:6d}   synced {total:8d}   "
                f"dead letters {status.dead_letters:4d}   "
                f"last sync: {status.last_sync.result if status.last_sync else '-':<10}"
                f"   alarm: {story.status}",
                end="",
                flush=True,
            )
            if not all(getattr(p, "proc", p).running for p in parts[2:]):
                dead = [
                    p.proc.name if hasattr(p, "proc") else p.name
                    for p in parts
                    if not getattr(p, "proc", p).running
                ]
                print(f"\nstopped unexpectedly: {', '.join(dead)}; see the logs in {DEMO_DIR}")
                return 1
    except _Stop:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()
        print("demo stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""``edge-sim``: simulated sensors publishing on MQTT.

Prints one JSON summary on stdout when done - how many messages it published and how many
valid readings per sensor key - so a test can demand exactly those counts at the hub. It exits
only after the broker acknowledged every QoS 1 message.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from shared.topics import TopicTemplate

_SENSOR_KINDS = {  # name: (baseline, natural spread, unit)
    "temp": (65.0, 2.0, "C"),
    "pressure": (5.5, 0.2, "bar"),
    "vibration": (2.0, 0.3, "mm/s"),
    "rpm": (1450.0, 15.0, "rpm"),
    "current": (12.0, 0.8, "A"),
    "humidity": (45.0, 3.0, "%"),
}
_MALFORMED = ("bad_json", "non_numeric", "nan", "bad_topic")


@dataclass
class Sensor:
    line: str
    machine: str
    name: str
    base: float
    spread: float
    unit: str

    @property
    def key(self) -> str:
        return f"{self.line}/{self.machine}/{self.name}"


@dataclass
class Summary:
    published: int = 0
    valid: int = 0
    malformed: int = 0
    per_sensor: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "valid": self.valid,
            "malformed": self.malformed,
            "per_sensor": dict(sorted(self.per_sensor.items())),
        }


def make_sensors(lines: int, machines: int, sensors: int) -> list[Sensor]:
    kinds = list(_SENSOR_KINDS)
    out = []
    for li in range(1, lines + 1):
        for mi in range(1, machines + 1):
            for si in range(sensors):
                kind = kinds[si % len(kinds)]
                name = kind if si < len(kinds) else f"{kind}{si // len(kinds) + 1}"
                base, spread, unit = _SENSOR_KINDS[kind]
                out.append(Sensor(f"line{li}", f"machine{mi}", name, base, spread, unit))
    return out


class Generator:
    """Decides what each message is; pure, so a seed reproduces a run exactly."""

    def __init__(self, args: argparse.Namespace, sensors: list[Sensor]) -> None:
        self.rng = random.Random(args.seed)
        self.args = args
        self.sensors = sensors
        self.template = TopicTemplate.compile(args.topic_template)

    def value(self, s: Sensor) -> float:
        v = s.base + self.rng.gauss(0.0, s.spread * self.args.noise)
        if self.rng.random() < self.args.spike_share:
            v += self.rng.choice((-1, 1)) * s.spread * self.rng.uniform(8, 20)
        return round(v, 3)

    def next(self, summary: Summary) -> tuple[str, bytes]:
        s = self.sensors[self.rng.randrange(len(self.sensors))]
        topic = self.template.topic_for(s.line, s.machine, s.name)
        if self.rng.random() < self.args.malformed_share:
            summary.malformed += 1
            kind = self.rng.choice(_MALFORMED)
            if kind == "bad_json":
                return topic, b'{"value": 1.0, "ts": '
            if kind == "non_numeric":
                return topic, json.dumps({"value": "hot", "unit": s.unit}).encode()
            if kind == "nan":
                return topic, b"NaN"
            return topic + "/extra", b"1.0"  # one level too many for the template
        now = time.time()
        form = self.rng.randrange(5)
        n = 2 if form == 2 else 1
        summary.valid += n
        summary.per_sensor[s.key] += n
        if form == 0:
            doc: object = {"value": self.value(s), "ts": round(now, 3), "unit": s.unit}
        elif form == 1:
            doc = {"value": self.value(s)}
        elif form == 2:
            doc = [
                {"value": self.value(s), "ts": round(now - 0.5, 3)},
                {"value": self.value(s), "ts": round(now, 3)},
            ]
        elif form == 3:
            doc = self.value(s)  # bare JSON number
        else:
            return topic, f"{self.value(s)}".encode()  # plain text
        return topic, json.dumps(doc).encode()


def run(args: argparse.Namespace) -> Summary:
    sensors = make_sensors(args.lines, args.machines, args.sensors)
    if args.sensors_total:
        sensors = sensors[: args.sensors_total]
    gen = Generator(args, sensors)
    summary = Summary()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-sim-{time.monotonic_ns()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *_a: acked.release()
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    progress = _Progress(args)
    try:
        start = time.monotonic()
        deadline = start + args.duration if args.duration else math.inf
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        limit = math.inf if args.count is None else args.count
        while summary.published < limit and time.monotonic() < deadline:
            topic, payload = gen.next(summary)
            client.publish(topic, payload, qos=args.qos)
            summary.published += 1
            if summary.published % 256 == 0:
                progress.show(summary.published, time.monotonic() - start)
            if interval:
                # Pace against the start, not the previous message, so rounding never drifts.
                delay = start + summary.published * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        if args.qos > 0:
            wait_until = time.monotonic() + args.ack_timeout
            for _ in range(summary.published):
                if not acked.acquire(timeout=max(0.0, wait_until - time.monotonic())):
                    raise TimeoutError("broker did not acknowledge every message in time")
    finally:
        progress.close(summary.published, time.monotonic() - start)
        client.disconnect()
        client.loop_stop()
    return summary


class _Progress:
    """A progress bar on stderr when it is a terminal (stdout carries the JSON summary)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.by_count = args.count is not None
        self.bar: Progress | None = None
        if not sys.stderr.isatty():
            return
        self.bar = Progress(
            TextColumn("edge-sim"),
            BarColumn(),
            TextColumn("{task.fields[published]:,} messages"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        total = args.count if self.by_count else args.duration
        if self.by_count and args.duration:
            total = min(args.count, args.duration * args.rate) if args.rate > 0 else args.count
        self.task = self.bar.add_task("publish", total=total, published=0)
        self.bar.start()

    def show(self, published: int, elapsed: float) -> None:
        if self.bar is not None:
            done = published if self.by_count else elapsed
            self.bar.update(self.task, completed=done, published=published)

    def close(self, published: int, elapsed: float) -> None:
        if self.bar is not None:
            self.show(published, elapsed)
            self.bar.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-sim",
        description="Simulated sensors publishing on MQTT. Prints a JSON summary (published, "
        "valid readings per sensor key) on stdout when done; a progress bar on a terminal.",
    )
    p.add_argument("--host", default="127.0.0.1", help="MQTT broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=1883, help="MQTT broker port (default 1883)")
    p.add_argument("--lines", type=int, default=2, help="production lines (default 2)")
    p.add_argument("--machines", type=int, default=3, help="machines per line (default 3)")
    p.add_argument("--sensors", type=int, default=4, help="sensors per machine (default 4)")
    p.add_argument("--sensors-total", type=int, help="use only the first N sensors")
    p.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="messages per second in total; 0 = as fast as possible",
    )
    p.add_argument("--count", type=int, help="publish this many messages, then exit")
    p.add_argument("--duration", type=float, help="publish for this many seconds, then exit")
    p.add_argument("--noise", type=float, default=1.0, help="noise scale (1.0 = natural spread)")
    p.add_argument("--spike-share", type=float, default=0.0, help="share of readings that spike")
    p.add_argument(
        "--malformed-share",
        type=float,
        default=0.0,
        help="share of malformed messages (bad JSON, non-numeric, NaN, bad topic)",
    )
    p.add_argument("--qos", type=int, choices=(0, 1), default=1, help="MQTT QoS (default 1)")
    p.add_argument(
        "--topic-template",
        default="factory/{line}/{machine}/{sensor}",
        help="topic to publish on (default factory/{line}/{machine}/{sensor})",
    )
    p.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    p.add_argument(
        "--ack-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker's acknowledgements at the end",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count is None and args.duration is None:
        print("edge-sim: give --count and/or --duration", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except (OSError, TimeoutError) as exc:
        print(f"edge-sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(summary.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""edge-load against the real parts: its simulated gateways against a real edge-hub (what it
reports as acked is exactly what the hub stored), its MQTT sensors against a real mosquitto
(every message it reports reaches a subscriber)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bench import days_kept, fleet
from devtools.stack import REPO, Broker, Hub, edge_load_binary, free_port, wait_for
from shared.wire import encode_batch

pytestmark = pytest.mark.integration

GATEWAYS = ["gw-load-a", "gw-load-b", "gw-load-c"]
SENSORS = 4


def test_golden_fixture_is_what_shared_wire_writes_today() -> None:
    """The Rust golden test compares against a committed fixture; this one fails when
    shared/wire.py's encoding moves on without the fixture (and edge-load) following."""
    script = REPO / "crates/edge-load/tests/fixtures/golden_batch.py"
    spec = importlib.util.spec_from_file_location("golden_batch", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fixture = script.with_name("golden_batch.json").read_bytes()
    assert encode_batch(module.BATCH, compress=False) == fixture


def _edge_load(*args: str, timeout: float = 60) -> dict[str, Any]:
    out = subprocess.run(
        [str(edge_load_binary()), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    return report


@pytest.fixture(scope="module")
def fleet_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Path]]:
    wd = tmp_path_factory.mktemp("edge-load")
    hub = Hub(wd)
    # What `gateway add ID1 ID2 ...` prints is the tokens file, unchanged.
    tokens = wd / "tokens.txt"
    tokens.write_text(hub.cli("gateway", "add", *GATEWAYS, "--factory", "plant-1") + "\n")
    assert len(tokens.read_text().split()) == 2 * len(GATEWAYS)
    hub.start()
    try:
        yield hub, tokens
    finally:
        print(hub.proc.log_tail())
        hub.stop()


def _stored(hub: Hub) -> Counter[str]:
    """Readings the hub holds, per gateway (the first level of edge-load's sensor keys)."""
    per_gateway: Counter[str] = Counter()
    for key, n in hub.counts_by_sensor().items():
        per_gateway[key.split("/")[0]] += n
    return per_gateway


def _check_accounting(report: dict[str, Any]) -> None:
    # On loopback every request gets an answer: nothing is left unconfirmed, and every
    # reading sent was either acked or refused as a whole batch.
    assert report["transport_errors"] == {}, report
    assert report["readings_unconfirmed"] == 0, report
    assert report["readings_acked"] == report["accepted"] + report["duplicates"], report
    assert report["readings_sent"] == report["readings_acked"] + report["readings_rejected"]
    # Only the hub's per-token rate limit may refuse a batch, and it is retried.
    assert set(report["non_2xx"]) <= {"429"}, report["error_samples"]


def test_fleet_acked_readings_are_stored_exactly_once(fleet_hub: tuple[Hub, Path]) -> None:
    hub, tokens = fleet_hub
    common = ["--hub", hub.url, "--tokens", str(tokens), "--sensors", str(SENSORS)]
    before = sum(_stored(hub).values())

    first = _edge_load(*common, "--batch", "100", "--duration", "3")
    _check_accounting(first)
    assert first["gateways"] == len(GATEWAYS)
    assert first["ok"] > 0 and first["duplicates"] == 0
    stored = _stored(hub)
    assert sum(stored.values()) - before == first["accepted"], (stored, first)
    # Every gateway got through, in whole batches (a batch is all or nothing).
    assert set(stored) == set(GATEWAYS)
    assert all(n > 0 and n % 100 == 0 for n in stored.values()), stored
    assert len(hub.counts_by_sensor()) == len(GATEWAYS) * SENSORS

    # The same seqs again: the hub answers them as duplicates and stores nothing twice.
    again = _edge_load(*common, "--batch", "100", "--duration", "1")
    _check_accounting(again)
    assert again["duplicates"] >= 100 * len(GATEWAYS), again
    assert sum(_stored(hub).values()) - before == first["accepted"] + again["accepted"]


def test_fleet_at_a_fixed_rate_sends_no_more_than_offered(fleet_hub: tuple[Hub, Path]) -> None:
    hub, tokens = fleet_hub
    before = sum(_stored(hub).values())
    # 3 gateways x 50 readings at 1,500/s: each gateway has a slot every 0.1 s, so 2 s hold
    # at most 20 slots each, 3,000 readings in all, whatever the hub's speed.
    report = _edge_load(
        "--hub",
        hub.url,
        "--tokens",
        str(tokens),
        "--batch",
        "50",
        "--rate",
        "1500",
        "--duration",
        "2",
        "--seq-start",
        "1000000000",
    )
    _check_accounting(report)
    assert report["rate_target"] == 1500
    assert 0 < report["readings_sent"] <= 3000, report
    assert report["duplicates"] == 0
    assert sum(_stored(hub).values()) - before == report["accepted"]


class _Subscriber:
    """paho at QoS 1, counting messages per topic."""

    def __init__(self, port: int) -> None:
        self.counts: Counter[str] = Counter()
        self.payloads: list[bytes] = []
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-load-sub")
        self.client.on_connect = lambda c, *_: c.subscribe("factory/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.counts[msg.topic] += 1
            if len(self.payloads) < 100:
                self.payloads.append(bytes(msg.payload))

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_mqtt_messages_reach_a_subscriber(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    sub = _Subscriber(broker.port)
    try:
        assert sub.subscribed.wait(10), "subscriber did not get its SUBACK"
        count, sensors = 6000, 12
        report = _edge_load(
            "mqtt",
            "--port",
            str(broker.port),
            "--rate",
            "4000",
            "--count",
            str(count),
            "--sensors",
            str(sensors),
            "--clients",
            "2",
            "--topic-template",
            "factory/{line}/{machine}/{sensor}",
        )
        assert report["acked"] == report["published"] == count, report
        assert report["errors"] == {}
        wait_for(f"{count} messages at the subscriber", lambda: sub.total() >= count, timeout=30)
        with sub.lock:
            counts = dict(sub.counts)
            payloads = list(sub.payloads)
        # Round-robin over the sensors: each topic got its share, none twice.
        assert len(counts) == sensors
        assert set(counts.values()) == {count // sensors}, counts
        assert all(t.startswith("factory/") and len(t.split("/")) == 4 for t in counts)
        now = time.time()
        for raw in payloads:
            msg = json.loads(raw)
            assert set(msg) == {"value", "ts"}
            assert isinstance(msg["value"], float | int) and abs(msg["ts"] - now) < 120
    finally:
        sub.stop()
        broker.stop()


def test_mqtt_without_a_broker_fails_within_its_timeout(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            str(edge_load_binary()),
            "mqtt",
            "--port",
            str(free_port()),
            "--count",
            "100",
            "--timeout",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["acked"] == 0 and report["errors"]["connection"] >= 1
    assert "refused" in report["error_sample"].lower()


def test_fleet_bench_tally_names_lost_and_doubled() -> None:
    def report(acked: int, duplicates: int = 0, unconfirmed: int = 0) -> dict[str, Any]:
        return {
            "readings_acked": acked,
            "duplicates": duplicates,
            "readings_unconfirmed": unconfirmed,
        }

    # A batch re-sent after its answer was lost comes back as duplicates: no loss.
    assert fleet._tally([report(500, duplicates=100), report(200)], 700)["lost"] == 0
    assert fleet._tally([report(500)], 400)["lost"] == 100
    # Unanswered readings may or may not be stored; anything beyond them is doubled.
    assert fleet._tally([report(500, unconfirmed=100)], 600)["doubled"] == 0
    assert fleet._tally([report(500, unconfirmed=100)], 650)["doubled"] == 50


def test_fleet_bench_rows_on_a_small_fleet(tmp_path: Path) -> None:
    """The `just bench` fleet rows end to end on a small fleet: they count exactly."""
    target, hub = fleet._sqlite_target(tmp_path, workers=1)
    rows = fleet._run_target(target, hub, tmp_path, seconds=1, gateways=20, raw_n=20_000)
    assert [r.name.split(" (")[0] for r in rows] == [
        "fleet flat out",
        "fleet paced",
        "fleet ingest p99",
        "fleet query p99",
        "fleet RSS/worker",
    ]
    extra = rows[0].extra
    assert extra["exact"] and extra["lost"] == 0 and extra["doubled"] == 0, extra
    assert extra["stored"] == extra["acked"] > 0
    assert extra["queries"] > 0 and extra["query_failures"] == {}
    assert all(r.value > 0 and r.baseline > 0 for r in rows), rows


def test_fleet_bench_rows_on_postgresql_count_the_hubs_connections(tmp_path: Path) -> None:
    """The PostgreSQL rows: exact, and their raw baseline from as many connections as the
    hub's processes held (the issue's "the same number of connections")."""
    made = fleet._postgres_target(tmp_path)
    assert made is not None, "the PostgreSQL fleet target could not be set up"
    target, hub = made
    try:
        rows = fleet._run_target(target, hub, tmp_path, seconds=1, gateways=20, raw_n=20_000)
    finally:
        target.cleanup()
    extra = rows[0].extra
    assert extra["exact"] and extra["lost"] == 0 and extra["doubled"] == 0, extra
    # Two worker processes, each with a pool of at least one connection.
    assert extra["hub_connections"] >= 2, extra
    assert extra["raw_from_hub_connections"] > 0
    assert f"from {extra['hub_connections']} connections at once" in rows[0].note


def test_days_kept_bench_rows() -> None:
    """``just bench --only days`` runs: both rows, from databases with and without the past
    days, each with a positive cost (a small run: 30 days, 100 requests a side)."""
    rows = days_kept.run(requests=100, days=30)
    assert [r.name for r in rows] == [
        "PostgreSQL CPU per 100-reading request, 30 days kept",
        "PostgreSQL CPU per anomaly-scan read, 30 days kept",
    ]
    assert all(r.value > 0 and r.baseline > 0 for r in rows), rows
    assert "the step-by-step batch" in rows[0].note

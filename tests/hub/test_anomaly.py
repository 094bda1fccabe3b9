"""The anomaly-detector client, its circuit breaker, the endpoint logic and the scan worker,
against fakes (httpx.MockTransport, a stdlib HTTP server that never answers in time)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hub.anomaly import (
    AnomalyClient,
    CircuitBreaker,
    DetectorRejected,
    DetectorUnavailable,
)
from hub.api.anomalies import sensor_anomalies
from hub.errors import ApiError
from hub.storage import GatewayReport, Storage, open_storage
from hub.worker import AnomalyScanner
from shared.wire import WireReading

T0 = 1_700_000_000.0
REPORT = GatewayReport(backlog=0, dropped=0, dead_letters=0, agent_version="t")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def zscore(payload: dict[str, Any]) -> dict[str, Any]:
    """A tiny stand-in for the Rust service's zscore rule."""
    values = payload["values"]
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / n) ** 0.5
    anomalies = []
    for i, v in enumerate(values):
        z = 0.0 if std == 0 else (v - mean) / std
        if abs(z) > payload["threshold"]:
            anomalies.append({"index": i, "value": v, "z_score": z})
    return {"statistics": {"mean": mean, "std_dev": std, "count": n}, "anomalies": anomalies}


class FakeDetector:
    """A MockTransport handler whose behaviour a test switches; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "ok"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.mode == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "500":
            return httpx.Response(500, json={"error": {"code": "boom", "message": "x"}})
        if self.mode == "garbage":
            return httpx.Response(200, content=b"<html>proxy error</html>")
        if self.mode == "422":
            return httpx.Response(422, json={"error": {"code": "empty_values", "message": "x"}})
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        return httpx.Response(200, json=zscore(json.loads(request.content)))


def make_client(fake: FakeDetector, clock: Clock | None = None) -> AnomalyClient:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10, clock=clock or Clock())
    return AnomalyClient(
        "http://detector.test", breaker=breaker, transport=httpx.MockTransport(fake)
    )


# -- breaker ------------------------------------------------------------------------------


def test_breaker_opens_after_n_failures_and_half_opens_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in_s == pytest.approx(10)
    clock.t += 10
    assert breaker.state == "half_open"
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.failure()  # failed probe: open again, for a full cool-down
    assert breaker.state == "open"
    clock.t += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"


# -- client -------------------------------------------------------------------------------


def test_detect_parses_the_answer() -> None:
    fake = FakeDetector()
    client = make_client(fake)
    values = [10.0] * 20 + [50.0] + [10.0] * 20
    detection = client.detect(values, 2.0, "zscore")
    assert [a.index for a in detection.anomalies] == [20]
    assert detection.statistics.count == 41
    assert set(detection.statistics_dict()) == {"mean", "std_dev", "count"}
    assert client.up is True and client.status()["status"] == "up"


def test_connection_error_is_retried_once_then_unavailable() -> None:
    fake = FakeDetector()
    fake.mode = "refused"
    client = make_client(fake)
    with pytest.raises(DetectorUnavailable, match="cannot reach"):
        client.detect([1.0, 2.0], 2.0, "zscore")
    assert fake.calls == 2
    assert client.up is False and client.status()["status"] == "down"


def test_connection_error_then_success_is_fine() -> None:
    fake = FakeDetector()
    attempts: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.ConnectError("reset", request=request)
        return fake(request)

    client = AnomalyClient("http://d.test", transport=httpx.MockTransport(flaky))
    assert client.detect([1.0, 2.0, 3.0], 2.0, "zscore").anomalies == []
    assert len(attempts) == 2
    assert client.breaker.state == "closed"


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_server_errors_are_not_retried(mode: str) -> None:
    fake = FakeDetector()
    fake.mode = mode
    client = make_client(fake)
    with pytest.raises(DetectorUnavailable):
        client.detect([1.0, 2.0], 2.0, "zscore")
    assert fake.calls == 1


def test_4xx_is_a_rejection_not_an_outage() -> None:
    fake = FakeDetector()
    fake.mode = "422"
    client = make_client(fake)
    for _ in range(5):
        with pytest.raises(DetectorRejected):
            client.detect([1.0], 2.0, "zscore")
    assert client.breaker.state == "closed"


def test_open_breaker_short_circuits_without_a_call() -> None:
    fake = FakeDetector()
    fake.mode = "500"
    clock = Clock()
    client = make_client(fake, clock)
    for _ in range(3):
        with pytest.raises(DetectorUnavailable):
            client.detect([1.0, 2.0], 2.0, "zscore")
    assert client.breaker.state == "open"
    calls = fake.calls
    with pytest.raises(DetectorUnavailable, match="marked down"):
        client.detect([1.0, 2.0], 2.0, "zscore")
    assert fake.calls == calls
    # Cool-down over, service back: the probe closes the breaker.
    fake.mode = "ok"
    clock.t += 10
    client.detect([1.0, 2.0], 2.0, "zscore")
    assert client.breaker.state == "closed"


# Answers far later than any deadline: a call that returns well before SLOW_S was cut off by
# the client's own deadline (0.8 s), however loaded the machine is.
SLOW_S = 30.0
DEADLINE_MARGIN_S = 10.0


class _Slow(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(SLOW_S)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_slow_service_fails_within_the_deadline(slow_server: str) -> None:
    client = AnomalyClient(slow_server)
    started = time.monotonic()
    with pytest.raises(DetectorUnavailable, match="no answer"):
        client.detect([1.0, 2.0], 2.0, "zscore")
    assert time.monotonic() - started < DEADLINE_MARGIN_S
    client.close()


def test_blackholed_connect_fails_within_the_deadline() -> None:
    # A listening socket whose backlog is full: SYNs go unanswered, connect() times out. The
    # kernel alone would retry SYNs for minutes; the margin only has to beat that.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port = sock.getsockname()[1]
        fillers = []
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        client = AnomalyClient(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(DetectorUnavailable):
            client.detect([1.0, 2.0], 2.0, "zscore")
        assert time.monotonic() - started < DEADLINE_MARGIN_S
        for s in fillers:
            s.close()
        client.close()


# -- endpoint logic and the worker --------------------------------------------------------


# ``storage`` (tests/hub/conftest.py): each test below runs on SQLite and on PostgreSQL.


def seed(storage: Storage, key: str, values: list[float], first_seq: int = 1) -> int:
    gateway = storage.add_gateway(f"gw-{key.replace('/', '-')}", "acme", f"h-{key}")
    factory = storage.get_gateway(f"gw-{key.replace('/', '-')}")
    assert factory is not None
    readings = [WireReading(first_seq + i, key, T0 + i, v) for i, v in enumerate(values)]
    storage.store_batch(gateway, factory["factory_id"], readings, REPORT)
    sensors = storage.list_sensors(key=key)
    return int(sensors[0]["id"])


SPIKY = [20.0 + (i % 3) * 0.1 for i in range(50)]
SPIKY[37] = 90.0


def test_anomalies_carry_their_readings_timestamps(storage: Storage) -> None:
    sid = seed(storage, "a/b/c", SPIKY)
    client = make_client(FakeDetector())
    data, meta = sensor_anomalies(storage, client, str(sid), {"limit": "100"})
    assert data["analyzed_readings"] == 50 and data["anomalies_found"] == 1
    (spike,) = data["anomalies"]
    assert (spike["index"], spike["value"], spike["ts"]) == (37, 90.0, T0 + 37)
    assert spike["time"].endswith("Z") and spike["z_score"] > 2
    assert meta["source"] == "live"
    # limit: the last N readings, still in time order (index relative to them).
    data, _ = sensor_anomalies(storage, client, str(sid), {"limit": "20"})
    assert data["analyzed_readings"] == 20
    assert [(a["index"], a["ts"]) for a in data["anomalies"]] == [(7, T0 + 37)]


def test_detector_down_is_503_unavailable(storage: Storage) -> None:
    sid = seed(storage, "a/b/down", [1.0, 2.0, 3.0])
    fake = FakeDetector()
    fake.mode = "refused"
    with pytest.raises(ApiError) as err:
        sensor_anomalies(storage, make_client(fake), str(sid), {"method": "mad"})
    assert err.value.status == 503 and err.value.code == "anomaly_detector_unavailable"
    assert "stored=true" in err.value.message


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"threshold": "abc"}, "threshold"),
        ({"threshold": "-1"}, "threshold"),
        ({"threshold": "inf"}, "threshold"),
        ({"threshold": "nan"}, "threshold"),
        ({"method": "iqr"}, "method"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"stored": "maybe"}, "stored"),
    ],
)
def test_bad_params_are_400_before_any_call(
    storage: Storage, params: dict[str, str], param: str
) -> None:
    sid = seed(storage, "a/b/p", [1.0, 2.0])
    fake = FakeDetector()
    with pytest.raises(ApiError) as err:
        sensor_anomalies(storage, make_client(fake), str(sid), params)
    assert err.value.status == 400 and err.value.details[0]["param"] == param
    assert fake.calls == 0


def test_rejection_is_a_502(storage: Storage) -> None:
    sid = seed(storage, "a/b/r", [1.0, 2.0])
    fake = FakeDetector()
    fake.mode = "422"
    with pytest.raises(ApiError) as err:
        sensor_anomalies(storage, make_client(fake), str(sid), {})
    assert err.value.status == 502


def scanner(storage: Storage, client: AnomalyClient) -> AnomalyScanner:
    return AnomalyScanner(storage, client, interval_s=60, limit=100, threshold=2.0, method="zscore")


def test_worker_stores_findings_and_stored_answers_without_the_detector(
    storage: Storage,
) -> None:
    sid = seed(storage, "w/x/spiky", SPIKY)
    flat = seed(storage, "w/x/flat", [5.0] * 10, first_seq=1000)
    fake = FakeDetector()
    client = make_client(fake)
    work = scanner(storage, client)
    assert work.scan_once() == 2
    assert fake.calls == 2
    # Nothing new since: nothing to do.
    assert work.scan_once() == 0 and fake.calls == 2
    fake.mode = "refused"
    data, meta = sensor_anomalies(storage, client, str(sid), {"stored": "true"})
    assert meta["source"] == "stored" and meta["method"] == "zscore"
    assert data["analyzed_readings"] == 50
    assert [(a["index"], a["ts"], a["value"]) for a in data["anomalies"]] == [(37, T0 + 37, 90.0)]
    assert data["statistics"]["count"] == 50
    flat_data, _ = sensor_anomalies(storage, client, str(flat), {"stored": "1"})
    assert flat_data["anomalies"] == [] and flat_data["analyzed_readings"] == 10


def test_worker_retries_sensors_after_an_outage(storage: Storage) -> None:
    seed(storage, "w/y/one", SPIKY)
    fake = FakeDetector()
    fake.mode = "refused"
    work = scanner(storage, make_client(fake))
    assert work.scan_once() == 0
    assert fake.calls == 2  # one call (connect retried once), then the round stops
    fake.mode = "ok"
    assert work.scan_once() == 1


def test_stored_before_any_scan_is_empty(storage: Storage) -> None:
    sid = seed(storage, "w/z/new", [1.0, 2.0])
    client = make_client(FakeDetector())
    data, meta = sensor_anomalies(storage, client, str(sid), {"stored": "true"})
    assert data["anomalies"] == [] and data["statistics"] is None
    assert meta["scanned_at"] is None


def test_worker_thread_starts_and_stops(storage: Storage) -> None:
    seed(storage, "w/t/x", SPIKY)
    work = scanner(storage, make_client(FakeDetector()))
    work.interval_s = 0.01
    work.start()
    deadline = time.monotonic() + 5
    while not storage.stored_anomalies(1, 10) and time.monotonic() < deadline:
        time.sleep(0.01)
    work.stop(timeout=2)
    assert storage.stored_anomalies(1, 10)


def test_one_hub_process_scans_what_any_of_them_stored(database_url: str) -> None:
    """workers > 1: two hub processes on one database. One leads the scan and scans the
    sensors the other one stored readings for; the other calls no detector. When the leader
    goes, the other takes over."""
    a, b = open_storage(database_url), open_storage(database_url)
    a.migrate()
    lead_det, other_det = FakeDetector(), FakeDetector()
    lead, other = scanner(a, make_client(lead_det)), scanner(b, make_client(other_det))
    assert lead.scan_once() == 0  # takes the lead; nothing stored yet
    seed(b, "mp/x/one", SPIKY)  # stored through the other process
    assert other.scan_once() == 0 and other_det.calls == 0
    assert lead.scan_once() == 1 and lead_det.calls == 1
    assert lead.scan_once() == 0  # each batch is scanned once
    a.close()
    seed(b, "mp/x/two", SPIKY)
    assert other.scan_once() == 1 and other_det.calls == 1
    b.close()

"""Anomalies through the real hub and the real anomaly-detector binary, and what happens to
the hub when the detector dies (invariant 6: degrade, don't fail)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import ROOT, HubProcess, start_hub, token
from tests.hub.test_api import _sample, assert_error, envelope, get, post, sensor_id

pytestmark = pytest.mark.integration

BINARY = Path(os.environ.get("ANOMALY_DETECTOR_BIN", ROOT / "target/release/anomaly-detector"))
T0 = 1_700_000_000.0


@dataclass
class Detector:
    proc: subprocess.Popen[str]
    url: str


def start_detector() -> Detector:
    proc = subprocess.Popen(
        [str(BINARY), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (\S+:\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"anomaly-detector did not start: {line!r}")
    return Detector(proc, f"http://{match.group(1)}")


@pytest.fixture(scope="module")
def detector(hub_database: str) -> Iterator[Detector]:
    # One per engine (hub_database): the last test of each round kills it.
    if not BINARY.exists():
        pytest.skip(f"{BINARY} not built (cargo build --release -p anomaly-detector)")
    det = start_detector()
    yield det
    if det.proc.poll() is None:
        det.proc.kill()
    det.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, detector: Detector, hub_database: str
) -> Iterator[HubProcess]:
    server = start_hub(
        tmp_path_factory.mktemp("hub"),
        database=hub_database,
        anomaly_url=detector.url,
        anomaly_scan_interval_s=0.2,
    )
    server.tokens = {
        "gw1": token(server.config, "gateway", "add", "gw-01", "--factory", "acme"),
        "read": token(server.config, "token", "add", "--role", "read"),
    }
    yield server
    assert server.stop() == 0


SPIKE_SEQ = 137


@pytest.fixture(scope="module")
def spiky(hub: HubProcess) -> int:
    """Sensor an/m/spiky: 200 readings around 20, one spike of 95 at seq 137."""
    readings = [
        WireReading(s, "an/m/spiky", T0 + s, 95.0 if s == SPIKE_SEQ else 20.0 + (s % 5) * 0.2)
        for s in range(1, 201)
    ]
    r = post(hub, "gw1", encode_batch(Batch(gateway_id="gw-01", readings=readings)))
    assert r.status_code == 200, r.text
    sid = sensor_id(hub, "an/m/spiky")
    assert sid is not None
    return sid


def test_a_spike_is_found_with_its_timestamp(hub: HubProcess, spiky: int) -> None:
    data, meta = envelope(get(hub, f"/api/v1/sensors/{spiky}/anomalies", limit=100))
    assert data["sensor_id"] == spiky and data["sensor_name"] == "spiky"
    assert data["analyzed_readings"] == 100
    assert data["anomalies_found"] == len(data["anomalies"]) == 1
    (spike,) = data["anomalies"]
    # The last 100 readings are seqs 101..200; the spike is the 37th of them.
    assert spike["index"] == SPIKE_SEQ - 101
    assert spike["value"] == 95.0 and spike["ts"] == T0 + SPIKE_SEQ
    assert spike["z_score"] > 2.0
    assert {"mean", "std_dev", "count"} <= set(data["statistics"])
    assert meta["method"] == "zscore" and meta["threshold"] == 2.0
    mad, _ = envelope(get(hub, f"/api/v1/sensors/{spiky}/anomalies", method="mad", threshold=3.5))
    assert [a["ts"] for a in mad["anomalies"]] == [T0 + SPIKE_SEQ]


@pytest.mark.parametrize(
    ("params", "param"),
    [({"threshold": "x"}, "threshold"), ({"method": "iqr"}, "method"), ({"limit": "0"}, "limit")],
)
def test_bad_params_are_400(
    hub: HubProcess, spiky: int, params: dict[str, str], param: str
) -> None:
    err = assert_error(get(hub, f"/api/v1/sensors/{spiky}/anomalies", **params), 400)
    assert err["details"][0]["param"] == param


def test_anomalies_need_read_scope_and_a_known_sensor(hub: HubProcess, spiky: int) -> None:
    assert_error(get(hub, f"/api/v1/sensors/{spiky}/anomalies", None), 401)
    assert_error(get(hub, f"/api/v1/sensors/{spiky}/anomalies", "gw1"), 403)
    assert_error(get(hub, "/api/v1/sensors/999999/anomalies"), 404, "not_found")


def test_background_scan_stores_findings(hub: HubProcess, spiky: int) -> None:
    deadline = time.monotonic() + 60  # a wait, not a speed claim
    while True:
        data, meta = envelope(get(hub, f"/api/v1/sensors/{spiky}/anomalies", stored="true"))
        if data["anomalies"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert meta["source"] == "stored" and meta["scanned_at"]
    assert [(a["value"], a["ts"]) for a in data["anomalies"]] == [(95.0, T0 + SPIKE_SEQ)]


def test_detector_state_is_reported(hub: HubProcess) -> None:
    ready = get(hub, "/health/ready", None)
    assert ready.status_code == 200
    assert ready.json()["anomaly_detector"]["status"] == "up"
    assert _sample(get(hub, "/metrics", None).text, "edge_hub_anomaly_detector_up") == 1.0


def test_detector_killed_gives_503_fast_and_the_rest_keeps_working(
    hub: HubProcess, detector: Detector, spiky: int
) -> None:
    detector.proc.send_signal(signal.SIGKILL)
    detector.proc.wait(timeout=10)
    path = f"/api/v1/sensors/{spiky}/anomalies"
    timings = []
    for _ in range(5):  # the first calls reach the dead port, later ones hit the open breaker
        started = time.monotonic()
        r = get(hub, path)
        timings.append(time.monotonic() - started)
        err = assert_error(r, 503, "anomaly_detector_unavailable")
        assert "stored=true" in err["message"]
    # Fast means bounded by the client's 0.8 s deadline, not by a hung socket; the margin holds
    # on a loaded machine.
    assert max(timings) < 10.0, timings
    print(f"time to 503 with the detector killed: {[round(t, 3) for t in timings]}")
    # Everything else answers.
    envelope(get(hub, f"/api/v1/sensors/{spiky}/stats"))
    envelope(get(hub, f"/api/v1/sensors/{spiky}/anomalies", stored="true"))
    body = encode_batch(
        Batch(gateway_id="gw-01", readings=[WireReading(5000, "an/m/spiky", T0 + 5000, 21.0)])
    )
    r = post(hub, "gw1", body)
    assert r.status_code == 200 and r.json()["data"]["accepted"] == 1
    ready = get(hub, "/health/ready", None)
    assert ready.status_code == 200
    assert ready.json()["anomaly_detector"]["status"] == "down"
    assert _sample(get(hub, "/metrics", None).text, "edge_hub_anomaly_detector_up") == 0.0

"""/metrics of a real hub, the request id it echoes, and its JSON log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from devtools.stack import metric_samples
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, start_hub, token


@pytest.fixture(scope="module")
def json_hub(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    server = start_hub(
        tmp_path_factory.mktemp("metrics-hub"),
        database=hub_database,
        log_format="json",
        anomaly_url="http://127.0.0.1:9",  # nothing listens: the detector is down
    )
    server.tokens = {
        "gw": token(server.config, "gateway", "add", "gw-m", "--factory", "metrics"),
        "read": token(server.config, "token", "add", "--role", "read"),
    }
    yield server
    assert server.stop() == 0


def _batch(seqs: range, value: float = 1.0) -> bytes:
    return encode_batch(
        Batch(
            gateway_id="gw-m",
            readings=[WireReading(s, "m/m1/temp", 1.7e9 + s, value) for s in seqs],
        )
    )


def _scrape(hub: HubProcess) -> dict[str, float]:
    r = httpx.get(f"{hub.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return metric_samples(r.text)


def test_ingest_and_request_metrics(json_hub: HubProcess) -> None:
    with json_hub.client("gw") as c:
        assert c.post("/api/v1/ingest", content=_batch(range(1, 6))).status_code == 200
        assert c.post("/api/v1/ingest", content=_batch(range(4, 9))).status_code == 200
        # seq 0 is invalid: the whole batch is refused (422) and nothing of it is stored.
        bad = c.post("/api/v1/ingest", content=_batch(range(0, 3)))
        assert bad.status_code == 422
    with json_hub.client("read") as c:
        assert c.get("/api/v1/sensors/999").status_code == 404
        assert c.get("/api/v1/sensors/1/anomalies").status_code == 503
    m = _scrape(json_hub)
    assert m['edge_hub_ingest_readings_total{result="accepted"}'] == 8
    assert m['edge_hub_ingest_readings_total{result="duplicate"}'] == 2
    assert m['edge_hub_ingest_readings_total{result="rejected"}'] == 1
    assert m['edge_hub_ingest_batches_total{status="200"}'] == 2
    assert m['edge_hub_ingest_batches_total{status="422"}'] == 1
    ingest = 'method="POST",route="/api/v1/ingest"'
    assert m[f'edge_hub_http_request_duration_seconds_count{{{ingest},status_class="2xx"}}'] == 2
    assert m[f'edge_hub_http_request_duration_seconds_count{{{ingest},status_class="4xx"}}'] == 1
    # Route templates, never raw paths: one series whatever the id.
    sensor = 'method="GET",route="/api/v1/sensors/:id",status_class="4xx"'
    assert m[f"edge_hub_http_request_duration_seconds_count{{{sensor}}}"] == 1
    assert not any("/sensors/999" in name for name in m)
    # The detector is down: its health gauge says so, and the breaker's state is exported.
    assert m["edge_hub_anomaly_detector_up"] == 0
    circuit = {
        s: m[f'edge_hub_anomaly_detector_circuit{{state="{s}"}}']
        for s in ("closed", "half_open", "open")
    }
    assert sorted(circuit.values()) == [0, 0, 1]


def test_request_id_is_echoed_and_logged_as_json(json_hub: HubProcess) -> None:
    with json_hub.client("gw") as c:
        assert c.post("/api/v1/ingest", content=_batch(range(100, 103))).status_code == 200
    rid = "4f1c2a7e-agent-sync-1"
    with json_hub.client("read") as c:
        # The detector is down: the handler logs a warning and the request ends in a 503.
        r = c.get("/api/v1/sensors/1/anomalies", headers={"X-Request-ID": rid})
    assert r.status_code == 503
    assert r.headers["x-request-id"] == rid
    assert r.json()["meta"]["request_id"] == rid
    # Without one the hub makes one up, and still answers with it.
    made = httpx.get(f"{json_hub.url}/health/live").headers["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{16}", made)
    # An oversized id (log flooding) is replaced, not echoed.
    forged = httpx.get(f"{json_hub.url}/health/live", headers={"X-Request-ID": "x" * 500})
    assert forged.headers["x-request-id"].startswith("req_")

    lines = [json.loads(line) for line in _log_lines(json_hub)]
    mine = [doc for doc in lines if doc.get("request_id") == rid]
    # Both the handler's own line and the request line carry the id.
    events = {doc["event"] for doc in mine}
    assert "request" in events and len(events) >= 2, mine
    request = next(doc for doc in mine if doc["event"] == "request")
    assert request["status"] == 503 and request["route"] == "/api/v1/sensors/:id/anomalies"
    assert {"timestamp", "level"} <= set(request)


def _log_lines(hub: HubProcess) -> list[str]:
    # Every line the hub writes once serving is JSON (the startup banner is plain text).
    text = hub.log.read_text()
    return [line for line in text.splitlines() if line.startswith("{")]

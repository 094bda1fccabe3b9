"""/openapi.json describes the real hub, and the hub keeps to it under generated input.

schemathesis generates requests from the spec and sends them to a real ``edge-hub serve``:
no answer may be a 5xx, and every answer must match the documented status codes, content
types, headers and schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.stack import Detector
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, start_hub, token

MAX_EXAMPLES = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    workdir = tmp_path_factory.mktemp("fuzz-hub")
    # A real anomaly-detector: with it down the anomalies route answers 503 by design.
    detector = Detector(workdir).start()
    # Its own hub without a rate limit: a burst of generated requests would otherwise be
    # answered 429 and test little else.
    server = start_hub(
        workdir, rate_limit_per_s=0, anomaly_url=detector.url, anomaly_scan_interval_s=0
    )
    server.tokens = {
        "gw": token(server.config, "gateway", "add", "gw-01", "--factory", "fuzz"),
        "admin": token(server.config, "token", "add", "--role", "admin"),
    }
    # A sensor with data and the gateway the spec's examples name, so that generated requests
    # reach rows and not only 404s.
    body = encode_batch(
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(i, "l1/m1/temp", 1.7e9 + i, 20.0 + i) for i in range(1, 50)],
        )
    )
    with server.client("gw") as c:
        c.post("/api/v1/ingest", content=body).raise_for_status()
    yield server
    assert server.stop() == 0
    detector.stop()


def test_hub_keeps_to_its_spec(fuzz_hub: HubProcess) -> None:
    # schemathesis' pytest plugin does not run under pytest 9 yet, so the operations are
    # driven here: valid and invalid input for each, every failure collected, all reported.
    schema = schemathesis.openapi.from_url(f"{fuzz_hub.url}/openapi.json")
    spec = httpx.get(f"{fuzz_hub.url}/openapi.json").json()
    failures: list[str] = []
    tried: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.add(operation.label)
        # Ingest is a gateway's route; everything else runs with the strongest operator token.
        who = "gw" if operation.path == "/api/v1/ingest" else "admin"
        headers = {"Authorization": f"Bearer {fuzz_hub.tokens[who]}"}
        spec_op = spec["paths"][operation.path][operation.method.lower()]
        # Invalid input needs some input to break: probes take none.
        takes_input = bool(spec_op["parameters"]) or "requestBody" in spec_op
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])
        for mode in modes:
            try:
                _fuzz(operation, mode, headers)
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert {"POST /api/v1/ingest", "PUT /api/v1/sensors/{id}/thresholds"} <= tried
    assert len(tried) >= 18
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keeps the run bounded
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_spec_describes_every_route(fuzz_hub: HubProcess) -> None:
    spec = httpx.get(f"{fuzz_hub.url}/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    # DESIGN.md section 4; the spec is built from the route table and refuses to build with
    # an undescribed route, so this also pins the table.
    sensor = "/api/v1/sensors/{id}"
    assert documented == {
        ("POST", "/api/v1/ingest"),
        ("GET", "/api/v1/gateways"),
        ("GET", "/api/v1/gateways/{id}"),
        ("GET", "/api/v1/gateways/{id}/config"),
        ("GET", "/api/v1/factories"),
        ("GET", "/api/v1/machines"),
        ("GET", "/api/v1/sensors"),
        ("GET", sensor),
        ("PUT", f"{sensor}/thresholds"),
        *(("GET", f"{sensor}/{leaf}") for leaf in ("readings", "series", "stats", "latest")),
        *(("GET", f"{sensor}/{leaf}") for leaf in ("alerts", "anomalies")),
        *(("GET", p) for p in ("/health/live", "/health/ready", "/metrics")),
        *(("GET", p) for p in ("/openapi.json", "/docs")),
    }
    ingest = spec["paths"]["/api/v1/ingest"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Batch")
    assert {"400", "401", "403", "413", "422", "429"} <= set(ingest["responses"])
    readings = spec["paths"]["/api/v1/sensors/{id}/readings"]["get"]
    assert {p["name"] for p in readings["parameters"]} == {"id", "from", "to", "limit"}
    assert spec["paths"]["/health/live"]["get"]["security"] == []


def test_docs_page_and_unknown_paths(fuzz_hub: HubProcess) -> None:
    docs = httpx.get(f"{fuzz_hub.url}/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "/docs/swagger-ui-bundle.js" in docs.text
    assert "/openapi.json" in httpx.get(f"{fuzz_hub.url}/docs/init.js").text
    # The catch-all 404 route stands beside them without shadowing them.
    missing = httpx.get(f"{fuzz_hub.url}/openapi.yaml")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

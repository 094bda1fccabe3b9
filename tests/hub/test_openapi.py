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
from tests.edge_alerts import RECENT_T0
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
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    workdir = tmp_path_factory.mktemp("fuzz-hub")
    # A real anomaly-detector: with it down the anomalies route answers 503 by design.
    detector = Detector(workdir).start()
    # Its own hub without a rate limit: a burst of generated requests would otherwise be
    # answered 429 and test little else.
    server = start_hub(
        workdir,
        database=hub_database,
        rate_limit_per_s=0,
        anomaly_url=detector.url,
        anomaly_scan_interval_s=0,
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
    # docs/api.md's routes; the spec is built from the route table and refuses to build with
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
        # The model's CRUD, back-fill, the report, the change log, the startup probe.
        ("POST", "/api/v1/factories"),
        ("POST", "/api/v1/machines"),
        *(
            (m, f"/api/v1/{kind}/{{id}}")
            for m in ("GET", "PATCH", "DELETE")
            for kind in ("factories", "machines")
        ),
        ("POST", "/api/v1/sensors"),
        ("PATCH", sensor),
        ("DELETE", sensor),
        ("POST", "/api/v1/readings/bulk"),
        ("GET", "/api/v1/factories/{id}/report"),
        ("GET", "/api/v1/audit"),
        ("GET", "/health/startup"),
        # Alert rules and the fleet's alerts with their lifecycle.
        *((m, f"{sensor}/rules") for m in ("GET", "POST")),
        *((m, "/api/v1/rules/{id}") for m in ("PATCH", "DELETE")),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/alerts/{id}"),
        ("GET", "/api/v1/alerts/{id}/journal"),
        *(("POST", f"/api/v1/alerts/{{id}}/{a}") for a in ("ack", "shelve", "unshelve")),
        *(("POST", f"{sensor}/{a}") for a in ("out-of-service", "in-service")),
        ("GET", "/api/v1/alarm-report"),
        ("GET", "/api/v1/alarm-summary"),
        # People's accounts.
        *((m, "/api/v1/users") for m in ("GET", "POST")),
        *((m, "/api/v1/users/{name}") for m in ("GET", "PATCH")),
    }
    ingest = spec["paths"]["/api/v1/ingest"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Batch")
    assert {"400", "401", "403", "413", "422", "429"} <= set(ingest["responses"])
    readings = spec["paths"]["/api/v1/sensors/{id}/readings"]["get"]
    assert {p["name"] for p in readings["parameters"]} == {
        "id",
        "from",
        "to",
        "limit",
        "rolling",
        "format",
    }
    assert spec["paths"]["/health/live"]["get"]["security"] == []


def test_docs_page_and_unknown_paths(fuzz_hub: HubProcess) -> None:
    docs = httpx.get(f"{fuzz_hub.url}/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "/docs/swagger-ui-bundle.js" in docs.text
    assert "/openapi.json" in httpx.get(f"{fuzz_hub.url}/docs/init.js").text
    # The catch-all 404 route stands beside them without shadowing them.
    missing = httpx.get(f"{fuzz_hub.url}/openapi.yaml")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# Values at and past the edges of each range the spec states (issue: hub hardening): the
# generated cases above rarely land exactly there.
TIME_EDGES = [
    "0",
    "253402300799",
    "253402300800",
    "1e15",
    "1e308",
    "-1",
    "nan",
    "inf",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "1970-01-01T00:00:00Z",
]
INT_EDGES = [str(v) for v in (0, 1, 2**63 - 1, 2**63, 2**64, -1)] + ["1e3", "0x10"]


def test_query_values_at_the_edges_are_never_5xx(fuzz_hub: HubProcess) -> None:
    spec = httpx.get(f"{fuzz_hub.url}/openapi.json").json()
    # A sensor of its own: the generated requests above may have deleted the others.
    batch = Batch(gateway_id="gw-01", readings=[WireReading(90_001, "edge/m1/temp", 1.7e9, 1.0)])
    with fuzz_hub.client("gw") as g:
        g.post("/api/v1/ingest", content=encode_batch(batch)).raise_for_status()
    with fuzz_hub.client("admin") as a:
        found = a.get("/api/v1/sensors", params={"key": "edge/m1/temp"}).json()["data"]
    sensor = found[0]["id"]
    failures = []
    with fuzz_hub.client("admin") as c:
        for path, ops in spec["paths"].items():
            get = ops.get("get")
            if get is None or ("{id}" in path and "sensors" not in path):
                continue
            url = path.replace("{id}", str(sensor))
            for param in get["parameters"]:
                if param["in"] != "query":
                    continue
                edges = TIME_EDGES if param["name"] in ("from", "to") else INT_EDGES
                for value in edges:
                    r = c.get(url, params={param["name"]: value})
                    if r.status_code >= 500 or str(r.status_code) not in get["responses"]:
                        failures.append(f"GET {url}?{param['name']}={value}: {r.status_code}")
                    elif r.status_code == 400:
                        named = {d.get("param") for d in r.json()["error"]["details"]}
                        if param["name"] not in named:
                            failures.append(f"GET {url}?{param['name']}={value}: 400 {named}")
    assert not failures, "\n".join(failures)


def test_batch_values_at_the_edges_are_never_5xx(fuzz_hub: HubProcess) -> None:
    alert = {
        "id": 1,
        "key": "l1/m1/temp",
        "rule": "threshold",
        "breach_type": "above_maximum",
        "severity": "high",
        "threshold_value": 1.0,
        "value": 2.0,
        # Recent: a running hub marks an alert active for over a day stale.
        "opened_at": RECENT_T0,
    }
    big = [2**63 - 1, 2**63, 2**64, -1, 0]
    cases: list[tuple[str, dict[str, Any]]] = []
    for name in ("backlog", "dropped", "dead_letters"):
        cases += [(name, {name: v}) for v in big]
    for name in ("id", "reading_seq"):
        cases += [(f"alerts.{name}", {"alerts": [{**alert, name: v}]}) for v in big]
    for name in ("opened_at", "closed_at"):
        cases += [
            (f"alerts.{name}", {"alerts": [{**alert, name: v}]})
            for v in (0, -1e12, 1e15, 253402300800, 1e308)
        ]
    failures = []
    with fuzz_hub.client("gw") as c:
        for i, (field, extra) in enumerate(cases):
            doc = {"gateway_id": "gw-01", "readings": [[1000 + i, "l1/m1/temp", RECENT_T0, 1.0]]}
            r = c.post("/api/v1/ingest", json={**doc, **extra})
            if r.status_code >= 500 or r.status_code not in (200, 422):
                failures.append(f"{field}={extra}: {r.status_code}")
            elif r.status_code == 422:
                named = {d.get("field") for d in r.json()["error"]["details"]}
                if field not in named:
                    failures.append(f"{field}={extra}: 422 names {named}")
    assert not failures, "\n".join(failures)

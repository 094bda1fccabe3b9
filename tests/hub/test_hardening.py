"""The hub against hostile input (issue: hub hardening), one test per finding, on a real hub.

Each sends what an attacker sent and checks the hub answers a 4xx that names the field,
stores nothing, and keeps answering afterwards. Findings 1 and 2 (a malformed chunk size, a
huge body read before auth) cannot be fixed inside Robyn 0.88's process; they are stopped by
the TLS front, see tests/deploy/test_nginx.py.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.stack import metric_samples
from hub.batchcheck import MAX_TS, SensorLimits, new_sensor_problems
from hub.ratelimit import ReadBudget
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import ENGINES, HubProcess, engine_url, start_hub, token

INT64 = 2**63
# A reading time the hub takes whatever its max_future_s (readings must not lie ahead).
NOW = time.time() - 60
ALERT = {
    "id": 1,
    "key": "hard/m1/temp",
    "rule": "threshold",
    "breach_type": "above_maximum",
    "severity": "high",
    "threshold_value": 50.0,
    "value": 60.0,
    "opened_at": NOW,
}


def _post(hub: HubProcess, doc: object, who: str = "gw1") -> httpx.Response:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with hub.client(who) as c:
        return c.post("/api/v1/ingest", content=raw, headers={"Content-Type": "application/json"})


def _batch(*readings: list[object], **extra: object) -> dict[str, object]:
    return {"gateway_id": "gw-01", "readings": [list(r) for r in readings], **extra}


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def _fields(err: dict[str, Any]) -> set[str]:
    return {d.get("field") or d.get("param") for d in err["details"]}


def _sensor(hub: HubProcess, key: str) -> dict[str, Any] | None:
    with hub.client("read") as c:
        found = c.get("/api/v1/sensors", params={"key": key}).json()["data"]
    return found[0] if found else None


def _alive(hub: HubProcess) -> None:
    assert hub.proc.poll() is None
    assert httpx.get(f"{hub.url}/health/live", timeout=5).status_code == 200


# -- finding 3: alert times outside the calendar are refused --------------------------------


@pytest.mark.parametrize("opened_at", [1e15, -1e12, MAX_TS + 1])
def test_alert_opened_at_outside_its_window_is_refused(hub: HubProcess, opened_at: float) -> None:
    body = _batch([101, "hard/m1/temp", 1.7e9, 1.0], alerts=[{**ALERT, "opened_at": opened_at}])
    err = _error(_post(hub, body), 422)
    assert _fields(err) == {"alerts.opened_at"}
    assert err["details"][0]["alert_id"] == 1
    # Nothing of the batch was stored, and the sensor's alerts still answer.
    sensor = _sensor(hub, "hard/m1/temp")
    if sensor is not None:
        with hub.client("read") as c:
            assert c.get(f"/api/v1/sensors/{sensor['id']}/alerts").status_code == 200


def test_alert_closed_at_in_the_far_future_is_refused(hub: HubProcess) -> None:
    alert = {**ALERT, "id": 2, "closed_at": 1e15}
    err = _error(_post(hub, _batch([102, "hard/m1/temp", 1.7e9, 1.0], alerts=[alert])), 422)
    assert _fields(err) == {"alerts.closed_at"}


@pytest.mark.parametrize("at", [1e15, MAX_TS + 1])
def test_stale_mark_time_outside_its_window_is_refused(hub: HubProcess, at: float) -> None:
    body = _batch([103, "hard/m1/temp", 1.7e9, 1.0], marks=[["hard/m1/temp", True, at]])
    assert _fields(_error(_post(hub, body), 422)) == {"marks.at"}


# -- finding 4: from/to past the year 9999 --------------------------------------------------


@pytest.fixture(scope="module")
def sensor_id(hub: HubProcess) -> int:
    assert _post(hub, _batch([1, "hard/range/temp", 1.7e9, 1.0])).status_code == 200
    sensor = _sensor(hub, "hard/range/temp")
    assert sensor is not None
    return int(sensor["id"])


@pytest.mark.parametrize("leaf", ["readings", "series", "stats"])
@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize(
    "value", ["1e15", "9999-12-31T23:59:59-01:00", "1e308", "0001-01-01T00:00:00+01:00", "-5"]
)
def test_times_past_year_9999_are_400_naming_the_parameter(
    hub: HubProcess, sensor_id: int, leaf: str, param: str, value: str
) -> None:
    with hub.client("read") as c:
        r = c.get(f"/api/v1/sensors/{sensor_id}/{leaf}", params={param: value})
    assert _fields(_error(r, 400)) == {param}


def test_the_last_second_of_9999_is_still_a_time(hub: HubProcess, sensor_id: int) -> None:
    with hub.client("read") as c:
        r = c.get(
            f"/api/v1/sensors/{sensor_id}/readings",
            params={"from": "0", "to": "9999-12-31T23:59:59Z"},
        )
    assert r.status_code == 200 and r.json()["meta"]["to"].startswith("9999-12-31T23:59:59")


# -- finding 5: integers past 64 bits, deep JSON -------------------------------------------


@pytest.mark.parametrize("field", ["backlog", "dropped", "dead_letters"])
@pytest.mark.parametrize("value", [INT64, 2**64, 10**30])
def test_report_counts_past_int64_are_refused(hub: HubProcess, field: str, value: int) -> None:
    err = _error(_post(hub, _batch([201, "hard/m1/temp", 1.7e9, 1.0], **{field: value})), 422)
    assert field in _fields(err)
    _alive(hub)


@pytest.mark.parametrize(
    ("field", "alert"),
    [
        ("alerts.id", {**ALERT, "id": INT64}),
        ("alerts.id", {**ALERT, "id": 10**25}),
        ("alerts.reading_seq", {**ALERT, "reading_seq": INT64}),
        ("alerts.reading_seq", {**ALERT, "reading_seq": 0}),
    ],
)
def test_alert_ids_past_int64_are_refused(
    hub: HubProcess, field: str, alert: dict[str, Any]
) -> None:
    err = _error(_post(hub, _batch([202, "hard/m1/temp", 1.7e9, 1.0], alerts=[alert])), 422)
    assert field in _fields(err)


def test_deeply_nested_json_in_an_unknown_field_is_400(hub: HubProcess) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    body = b'{"gateway_id": "gw-01", "readings": [], "extra": ' + deep + b"}"
    assert _error(_post(hub, body), 400)["code"] == "invalid_json"
    # The same on the other route that takes a JSON body.
    with hub.client("admin") as c:
        r = c.put("/api/v1/sensors/1/thresholds", content=b'{"min": 1, "x": ' + deep + b"}")
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] != "internal"
    _alive(hub)


# -- finding 6: a body shorter than its Content-Length ------------------------------------


def _raw(hub: HubProcess, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", hub.port), timeout=30) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
        return out


def test_body_shorter_than_its_content_length_is_refused(hub: HubProcess) -> None:
    body = encode_batch(
        Batch(gateway_id="gw-01", readings=[WireReading(301, "hard/cut/temp", 1.7e9, 1.0)]),
        compress=False,
    )
    response = _raw(
        hub,
        (
            f"POST /api/v1/ingest HTTP/1.1\r\nHost: hub\r\n"
            f"Authorization: Bearer {hub.tokens['gw1']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) + 40}\r\n\r\n"
        ).encode()
        + body,
    )
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b'"incomplete_body"' in response
    assert _sensor(hub, "hard/cut/temp") is None
    _alive(hub)


# -- finding 7: sensor keys with control characters or blank segments ----------------------


@pytest.mark.parametrize(
    "key",
    [
        "hard/m1/a\x00b",
        "hard/m1/a\r\nb",
        "hard/m1/tab\there",
        "hard/   /temp",
        "   /m1/temp",
        "hard/m1/ ",
        "hard/m1/\u202etemp",
        "hard/m1/zero\u200bwidth",
        "hard//temp",
        "hard/m1/temp/extra",
        "hard/m1/" + "x" * 129,
    ],
)
def test_bad_sensor_keys_never_become_sensors(hub: HubProcess, key: str) -> None:
    err = _error(_post(hub, _batch([401, key, 1.7e9, 1.0])), 422)
    assert err["details"][0]["seq"] == 401 and err["details"][0]["field"] == "key"
    with hub.client("read") as c:
        keys = {s["key"] for s in c.get("/api/v1/sensors").json()["data"]}
    assert key not in keys


def test_bad_key_in_an_alert_is_refused(hub: HubProcess) -> None:
    alert = {**ALERT, "id": 3, "key": "hard/m1/\x07bell"}
    err = _error(_post(hub, _batch([402, "hard/m1/temp", 1.7e9, 1.0], alerts=[alert])), 422)
    assert "alerts.key" in _fields(err)


# -- finding 8: new sensors capped per batch and per factory -------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def capped_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return engine_url(request, tmp_path_factory.mktemp("capped-db"))


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, capped_database: str) -> Iterator[HubProcess]:
    """A hub of its own with small sensor limits and a small read budget."""
    directory = tmp_path_factory.mktemp("capped")
    server = start_hub(
        directory,
        database=capped_database,
        max_new_sensors_per_batch=5,
        max_sensors_per_factory=8,
        heavy_read_rows=100,
        read_budget_rows_per_s=0.001,  # no refill within a test: the burst is the budget
        read_budget_burst_rows=1_500,
    )
    server.tokens = {
        "gw1": token(server.config, "gateway", "add", "gw-01", "--factory", "capped"),
        "read": token(server.config, "token", "add", "--role", "read"),
        "read2": token(server.config, "token", "add", "--role", "read"),
    }
    yield server
    assert server.stop() == 0


def _keys(prefix: str, n: int, seq0: int) -> list[list[object]]:
    return [[seq0 + i, f"cap/{prefix}/s{i}", 1.7e9 + i, float(i)] for i in range(n)]


def test_new_sensors_are_capped_per_batch_and_per_factory(capped: HubProcess) -> None:
    # Seven new keys in one batch, five allowed: the readings of the last two are named.
    err = _error(_post(capped, _batch(*_keys("a", 7, 1))), 422)
    assert err["code"] == "sensor_limit"
    assert {d["limit"] for d in err["details"]} == {"max_new_sensors_per_batch"}
    assert sorted(d["seq"] for d in err["details"]) == [6, 7]
    assert "max_new_sensors_per_batch" in err["message"]
    assert _sensor(capped, "cap/a/s0") is None  # all or nothing
    # Five pass; then the factory has room for three more.
    assert _post(capped, _batch(*_keys("a", 5, 1))).status_code == 200
    err = _error(_post(capped, _batch(*_keys("b", 4, 100))), 422)
    assert {d["limit"] for d in err["details"]} == {"max_sensors_per_factory"}
    assert [d["seq"] for d in err["details"]] == [103]
    assert _post(capped, _batch(*_keys("b", 3, 100))).status_code == 200
    # Full: known sensors still take readings, a new one does not.
    assert _post(capped, _batch([200, "cap/a/s0", NOW, 1.0])).status_code == 200
    err = _error(_post(capped, _batch([201, "cap/c/new", NOW, 1.0])), 422)
    assert err["details"][0]["limit"] == "max_sensors_per_factory"
    metrics = metric_samples(httpx.get(f"{capped.url}/metrics").text)
    assert metrics['edge_hub_sensor_limit_refusals_total{limit="max_new_sensors_per_batch"}'] >= 1
    assert metrics['edge_hub_sensor_limit_refusals_total{limit="max_sensors_per_factory"}'] >= 2


def test_new_sensor_problems_admit_keys_in_batch_order() -> None:
    batch = Batch(
        gateway_id="gw",
        readings=[WireReading(i, f"l/m/s{i % 3}", 1.0, 1.0) for i in range(1, 10)],
    )
    details, limit = new_sensor_problems(batch, set(), 0, SensorLimits(per_batch=2, per_factory=9))
    assert limit == "max_new_sensors_per_batch"
    assert sorted(d["seq"] for d in details) == [3, 6, 9]  # every reading of key s0
    assert new_sensor_problems(batch, {"l/m/s0"}, 1, SensorLimits(2, 9)) == ([], None)


# -- finding 10: methods ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/v1/gateways", "GET, HEAD, OPTIONS"),
        ("DELETE", "/api/v1/sensors/1/latest", "GET, HEAD, OPTIONS"),
        ("GET", "/api/v1/ingest", "POST, OPTIONS"),
        ("PATCH", "/api/v1/sensors/1/thresholds", "PUT, OPTIONS"),
        ("TRACE", "/health/live", "GET, HEAD, OPTIONS"),
        ("TRACE", "/api/v1/ingest", "POST, OPTIONS"),
    ],
)
def test_wrong_method_is_405_with_allow(
    hub: HubProcess, method: str, path: str, allow: str
) -> None:
    r = httpx.request(method, f"{hub.url}{path}", timeout=10)
    err = _error(r, 405)
    assert err["code"] == "method_not_allowed"
    assert r.headers["allow"] == allow


def test_head_answers_as_get_without_a_body(hub: HubProcess) -> None:
    with hub.client("read") as c:
        got = c.get("/api/v1/gateways")
        head = c.head("/api/v1/gateways")
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    # Auth is the same: no token, 401 without a body.
    anonymous = httpx.head(f"{hub.url}/api/v1/gateways", timeout=10)
    assert anonymous.status_code == 401 and anonymous.content == b""
    assert httpx.head(f"{hub.url}/health/live", timeout=10).status_code == 200


def test_options_lists_the_methods(hub: HubProcess) -> None:
    r = httpx.options(f"{hub.url}/api/v1/sensors/1/thresholds", timeout=10)
    assert r.status_code == 204 and r.headers["allow"] == "PUT, OPTIONS"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE", "DELETE"])
def test_unknown_paths_are_404_envelopes_for_every_method(hub: HubProcess, method: str) -> None:
    r = httpx.request(method, f"{hub.url}/api/v1/nothing-here", timeout=10)
    assert r.status_code == 404
    if method != "HEAD":
        assert r.json()["error"]["code"] == "not_found"


# -- finding 11: a budget on expensive reads -----------------------------------------------


def test_expensive_reads_draw_on_a_per_token_budget(capped: HubProcess) -> None:
    sensor = _sensor(capped, "cap/a/s0")
    assert sensor is not None
    path = f"/api/v1/sensors/{sensor['id']}"
    with capped.client("read") as c:
        # 1,000 of the 1,500 rows the burst holds; the next large read would exceed it.
        assert c.get(f"{path}/readings", params={"limit": 1000}).status_code == 200
        r = c.get(f"{path}/series", params={"bucket": "1ms", "limit": 1000})
        err = _error(r, 429)
        assert err["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        # Small reads are not charged; a narrow range makes a series small, whatever its limit.
        assert c.get(f"{path}/readings", params={"limit": 50}).status_code == 200
        narrow = {"from": "1700000000", "to": "1700000060", "bucket": "1s", "limit": 100000}
        assert c.get(f"{path}/series", params=narrow).status_code == 200
    # Another token has its own budget; ingest is never charged.
    with capped.client("read2") as c:
        assert c.get(f"{path}/readings", params={"limit": 1000}).status_code == 200
    assert _post(capped, _batch([300, "cap/a/s0", NOW, 2.0])).status_code == 200
    metrics = metric_samples(httpx.get(f"{capped.url}/metrics").text)
    assert metrics['edge_hub_read_budget_refusals_total{reason="budget"}'] >= 1


def test_read_budget_caps_concurrent_heavy_reads() -> None:
    now = [0.0]
    budget = ReadBudget(1000.0, 10_000, max_concurrent=1, heavy_rows=10, clock=lambda: now[0])
    assert not budget.is_heavy(10) and budget.is_heavy(11)
    assert budget.acquire(1, 5_000) is None
    # A second heavy read, even from another token, waits for the slot...
    assert budget.acquire(2, 5_000) == ("concurrency", 1.0)
    budget.release()
    # ...and was not charged for the refusal.
    assert budget.acquire(2, 10_000) is None
    budget.release()
    reason, wait = budget.acquire(2, 1_000) or ("", 0.0)
    assert reason == "budget" and wait == pytest.approx(1.0)
    now[0] += 1.0
    assert budget.acquire(2, 1_000) is None


# -- /docs offline -------------------------------------------------------------------------


def test_docs_load_nothing_from_the_internet(hub: HubProcess) -> None:
    page = httpx.get(f"{hub.url}/docs", timeout=10)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text and "//" not in page.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) >= 3
    for url in urls:
        asset = httpx.get(f"{hub.url}{url}", timeout=10)
        assert asset.status_code == 200 and len(asset.content) > 0, url
    init = httpx.get(f"{hub.url}/docs/init.js", timeout=10).text
    assert '"/openapi.json"' in init


def test_no_cdn_url_in_the_hub_package() -> None:
    hub_dir = Path(__file__).resolve().parents[2] / "hub"
    for path in hub_dir.rglob("*.py"):
        text = path.read_text()
        for host in ("unpkg.com", "cdn.jsdelivr", "cdnjs", "googleapis.com"):
            assert host not in text, f"{path} mentions {host}"


def test_heavy_read_cap_must_leave_a_thread_for_ingest() -> None:
    from pydantic import ValidationError

    from hub.config import HubSettings

    with pytest.raises(ValidationError, match="max_concurrent_heavy_reads"):
        HubSettings(threads=2, max_concurrent_heavy_reads=2)
    assert HubSettings(threads=4, max_concurrent_heavy_reads=3).max_concurrent_heavy_reads == 3


# -- NUL and control characters (PostgreSQL text cannot hold NUL) --------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sensors?key=a%00b/m/s",
        "/api/v1/gateways/gw%00",
        "/api/v1/machines?factory_id=1%00",
        "/api/v1/sensors?machine_id%00=1",
    ],
)
def test_nul_in_a_parameter_is_400(hub: HubProcess, path: str) -> None:
    with hub.client("read") as c:
        assert _error(c.get(path), 400)["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("agent_version", _batch([501, "hard/m1/temp", 1.7e9, 1.0], agent_version="1.0\x00")),
        ("unit", _batch([502, "hard/m1/temp", 1.7e9, 1.0, "degC\x00"])),
        ("unit", _batch([503, "hard/m1/temp", 1.7e9, 1.0, "deg\r\nC"])),
    ],
)
def test_control_characters_in_stored_text_are_refused(
    hub: HubProcess, field: str, body: dict[str, object]
) -> None:
    assert field in _fields(_error(_post(hub, body), 422))

"""The HTTP API against a real ``edge-hub serve`` process."""

from __future__ import annotations

import contextlib
import gzip
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest

from shared.timeutil import to_rfc3339
from shared.wire import Batch, WireReading, decode_response, encode_batch
from tests.hub.conftest import HubProcess, token

T0 = 1_700_000_000.0


def batch(gateway: str, seqs: range, key: str = "l1/m1/temp", **kw: Any) -> Batch:
    return Batch(
        gateway_id=gateway,
        readings=[WireReading(s, key, T0 + s, float(s), "C") for s in seqs],
        **kw,
    )


def post(hub: HubProcess, who: str | None, body: bytes, gz: bool = True) -> httpx.Response:
    headers = {"Content-Encoding": "gzip"} if gz else {}
    with hub.client(who) as c:
        return c.post("/api/v1/ingest", content=body, headers=headers)


def get(hub: HubProcess, path: str, who: str | None = "read", **params: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.get(path, params=params)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "meta"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["meta"]["request_id"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


def sensor_id(hub: HubProcess, key: str, factory_id: int | None = None) -> int | None:
    params = {"key": key} if factory_id is None else {"key": key, "factory_id": factory_id}
    rows = get(hub, "/api/v1/sensors", **params).json()["data"]
    return rows[0]["id"] if rows else None


def count(hub: HubProcess, key: str) -> int:
    sid = sensor_id(hub, key)
    if sid is None:
        return 0
    return int(get(hub, f"/api/v1/sensors/{sid}/stats").json()["data"]["count"])


# -- ingest ------------------------------------------------------------------------------


def test_ingest_gzip_and_duplicates(hub: HubProcess) -> None:
    body = encode_batch(batch("gw-01", range(1, 501), "ing/gz/temp", backlog=7))
    assert body[:2] == b"\x1f\x8b"
    first = post(hub, "gw1", body)
    assert first.status_code == 200, first.text
    result = decode_response(first.content)
    assert (result.accepted, result.duplicates, result.config_version) == (500, 0, 0)
    again = decode_response(post(hub, "gw1", body).content)
    assert (again.accepted, again.duplicates) == (0, 500)
    # Uncompressed JSON, overlapping range, other boundaries.
    plain = encode_batch(batch("gw-01", range(400, 601), "ing/gz/temp"), compress=False)
    overlap = post(hub, "gw1", plain, gz=False)
    assert overlap.status_code == 200, overlap.text
    assert overlap.json()["data"] == {"accepted": 100, "duplicates": 101, "config_version": 0}
    assert count(hub, "ing/gz/temp") == 600


def test_same_seq_from_other_gateway_is_stored(hub: HubProcess) -> None:
    # Seqs unused by gw-01 so far; each gateway has its own seq space.
    seqs = range(20_001, 20_011)
    r1 = post(hub, "gw1", encode_batch(batch("gw-01", seqs, "ing/two/x")))
    assert r1.json()["data"]["accepted"] == 10
    r2 = post(hub, "gw2", encode_batch(batch("gw-02", seqs, "ing/two/x")))
    assert r2.json()["data"]["accepted"] == 10
    assert count(hub, "ing/two/x") == 20


def test_ingest_needs_a_gateway_token(hub: HubProcess) -> None:
    body = encode_batch(batch("gw-01", range(1, 3), "ing/auth/x"))
    assert_error(post(hub, None, body), 401, "unauthorized")
    with httpx.Client(base_url=hub.url, headers={"Authorization": "Bearer feg_nope"}) as c:
        assert_error(c.post("/api/v1/ingest", content=body), 401)
    assert_error(post(hub, "read", body), 403, "forbidden")
    assert_error(post(hub, "admin", body), 403, "forbidden")
    assert count(hub, "ing/auth/x") == 0


def test_ingest_for_another_gateway_is_403_and_stores_nothing(hub: HubProcess) -> None:
    before = get(hub, "/api/v1/gateways/gw-02").json()["data"]
    body = encode_batch(batch("gw-02", range(1, 50), "ing/spoof/x", backlog=99))
    err = assert_error(post(hub, "gw1", body), 403, "forbidden")
    assert "gw-01" in err["message"]
    assert sensor_id(hub, "ing/spoof/x") is None
    after = get(hub, "/api/v1/gateways/gw-02").json()["data"]
    assert after["backlog"] == before["backlog"] and after["last_seen"] == before["last_seen"]


def test_half_bad_batch_is_rejected_whole(hub: HubProcess) -> None:
    good = [WireReading(s, "ing/half/ok", T0 + s, 1.0) for s in range(1, 6)]
    bad = [WireReading(6, "not-a-key", T0, 1.0), WireReading(7, "ing/half/ok", -5.0, 1.0)]
    body = encode_batch(Batch(gateway_id="gw-01", readings=good + bad))
    err = assert_error(post(hub, "gw1", body), 422, "validation_error")
    fields = {(d["index"], d["field"]) for d in err["details"]}
    assert fields == {(5, "key"), (6, "ts")}
    assert sensor_id(hub, "ing/half/ok") is None


def test_schema_mismatch_is_422(hub: HubProcess) -> None:
    body = b'{"gateway_id": "gw-01", "readings": [[1, "a/b/c", "soon", 1.0]]}'
    assert_error(post(hub, "gw1", body, gz=False), 422, "validation_error")


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"{not json", {}, "invalid_json"),
        (b"", {}, "invalid_json"),
        (b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}, "bad_encoding"),
        # mtime=0: a test's name must not change with the second it was collected in, or
        # two pytest-xdist workers collect different tests and refuse to run.
        (gzip.compress(b'{"a":1}', mtime=0)[:-6], {"Content-Encoding": "gzip"}, "bad_encoding"),
        (b"{}", {"Content-Encoding": "br"}, "bad_encoding"),
        (b"\xff\xfe\x00\x01", {}, "invalid_json"),
    ],
    ids=["not-json", "empty", "not-gzip", "truncated-gzip", "brotli", "not-utf8"],
)
def test_malformed_bodies_are_400(
    hub: HubProcess, body: bytes, headers: dict[str, str], code: str
) -> None:
    with hub.client("gw1") as c:
        assert_error(c.post("/api/v1/ingest", content=body, headers=headers), 400, code)


def test_oversized_body_is_413(hub: HubProcess) -> None:
    body = encode_batch(batch("gw-01", range(1, 3), "ing/big/x"), compress=False)
    padded = body[:-1] + b" " * 1_100_000 + b"}"
    assert_error(post(hub, "gw1", padded, gz=False), 413, "payload_too_large")
    assert sensor_id(hub, "ing/big/x") is None


def test_gzip_bomb_is_413(hub: HubProcess) -> None:
    bomb = gzip.compress(b" " * (70 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1_000_000
    assert_error(post(hub, "gw1", bomb), 413, "payload_too_large")


def test_heartbeat_batch_updates_gateway(hub: HubProcess) -> None:
    r = post(
        hub,
        "gw3",
        encode_batch(
            Batch(
                gateway_id="gw-03",
                readings=[],
                backlog=42,
                dropped=2,
                dead_letters=3,
                agent_version="1.2.3",
            )
        ),
    )
    assert r.json()["data"]["accepted"] == 0
    gw = get(hub, "/api/v1/gateways/gw-03").json()["data"]
    assert gw["status"] == "online"
    reported = (gw["backlog"], gw["dropped"], gw["dead_letters"], gw["agent_version"])
    assert reported == (42, 2, 3, "1.2.3")
    assert gw["factory"] == "globex"


def test_rotated_gateway_token(hub: HubProcess) -> None:
    new = token(hub.config, "gateway", "add", "gw-rot", "--factory", "acme")
    body = encode_batch(batch("gw-rot", range(1, 3), "ing/rot/x"))
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {new}"}) as c:
        assert c.post("/api/v1/ingest", content=body).status_code == 200
    newer = token(hub.config, "gateway", "add", "gw-rot", "--factory", "acme", "--rotate")
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {new}"}) as c:
        assert_error(c.post("/api/v1/ingest", content=body), 401)
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {newer}"}) as c:
        assert c.post("/api/v1/ingest", content=body).json()["data"]["duplicates"] == 2


# -- queries -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series_sensor(hub: HubProcess) -> int:
    """Sensor q/m/s with readings at T0+1 .. T0+300, value = seq."""
    r = post(hub, "gw1", encode_batch(batch("gw-01", range(10_001, 10_301), "q/m/s")))
    assert r.status_code == 200, r.text
    sid = sensor_id(hub, "q/m/s")
    assert sid is not None
    return sid


def envelope(r: httpx.Response) -> tuple[Any, dict[str, Any]]:
    assert r.status_code == 200, r.text
    body = r.json()
    # A list's page has links beside data and meta (hub.api.pagination).
    assert set(body) in ({"data", "meta"}, {"data", "meta", "links"})
    assert body["meta"]["request_id"] and body["meta"]["timestamp"]
    return body["data"], body["meta"]


def test_read_endpoints_need_read_or_admin(hub: HubProcess, series_sensor: int) -> None:
    paths = [
        "/api/v1/gateways",
        "/api/v1/gateways/gw-01",
        "/api/v1/factories",
        "/api/v1/machines",
        "/api/v1/sensors",
        f"/api/v1/sensors/{series_sensor}",
        f"/api/v1/sensors/{series_sensor}/readings",
        f"/api/v1/sensors/{series_sensor}/series",
        f"/api/v1/sensors/{series_sensor}/stats",
        f"/api/v1/sensors/{series_sensor}/latest",
    ]
    for path in paths:
        assert_error(get(hub, path, None), 401, "unauthorized")
        assert_error(get(hub, path, "gw1"), 403, "forbidden")
        envelope(get(hub, path, "read"))
        envelope(get(hub, path, "admin"))


def test_gateways(hub: HubProcess) -> None:
    data, meta = envelope(get(hub, "/api/v1/gateways"))
    names = [g["name"] for g in data]
    assert {"gw-01", "gw-02", "gw-03"} <= set(names)
    assert meta["count"] == len(data)
    gw1 = envelope(get(hub, "/api/v1/gateways/gw-01"))[0]
    assert gw1["id"] == "gw-01" and gw1["factory"] == "acme"
    for key in ("last_seen", "backlog", "dropped", "dead_letters", "agent_version", "status"):
        assert key in gw1
    assert_error(get(hub, "/api/v1/gateways/nope"), 404, "not_found")


def test_never_seen_gateway(hub: HubProcess) -> None:
    token(hub.config, "gateway", "add", "gw-idle", "--factory", "acme")
    gw = envelope(get(hub, "/api/v1/gateways/gw-idle"))[0]
    assert gw["status"] == "never_seen" and gw["last_seen"] is None


def test_model_listing(hub: HubProcess, series_sensor: int) -> None:
    factories = envelope(get(hub, "/api/v1/factories"))[0]
    acme = next(f for f in factories if f["name"] == "acme")
    machines = envelope(get(hub, "/api/v1/machines", factory_id=acme["id"]))[0]
    machine = next(m for m in machines if (m["line"], m["name"]) == ("q", "m"))
    assert all(m["factory_id"] == acme["id"] for m in machines)
    sensors = envelope(get(hub, "/api/v1/sensors", machine_id=machine["id"]))[0]
    assert [s["key"] for s in sensors] == ["q/m/s"]
    sensor = envelope(get(hub, f"/api/v1/sensors/{series_sensor}"))[0]
    assert sensor["key"] == "q/m/s" and sensor["unit"] == "C" and sensor["name"] == "s"
    assert sensor["machine_id"] == machine["id"]
    assert sensor["thresholds"] == {"min": None, "max": None, "deadband": 0.0}
    assert envelope(get(hub, "/api/v1/machines", factory_id=999_999))[0] == []
    assert envelope(get(hub, "/api/v1/sensors", key="no/such/key"))[0] == []


def test_readings(hub: HubProcess, series_sensor: int) -> None:
    path = f"/api/v1/sensors/{series_sensor}/readings"
    data, meta = envelope(get(hub, path))
    assert len(data) == 300 and meta["truncated"] is False
    assert [r["value"] for r in data] == [float(s) for s in range(10_001, 10_301)]
    assert set(data[0]) >= {"ts", "value", "time"}
    assert data[0]["time"].endswith("Z")
    data, meta = envelope(get(hub, path, limit=10))
    assert len(data) == 10 and meta["truncated"] is True
    start, end = T0 + 10_100, T0 + 10_110
    data, _ = envelope(get(hub, path, **{"from": start, "to": end}))
    assert [r["ts"] for r in data] == [T0 + s for s in range(10_100, 10_110)]
    rfc = {"from": to_rfc3339(start), "to": to_rfc3339(end).replace("Z", "+00:00")}
    assert envelope(get(hub, path, **rfc))[0] == data


def test_series(hub: HubProcess, series_sensor: int) -> None:
    path = f"/api/v1/sensors/{series_sensor}/series"
    data, meta = envelope(get(hub, path, bucket="1m"))
    assert meta["bucket_s"] == 60.0
    assert sum(b["count"] for b in data) == 300
    assert all(b["ts"] % 60 == 0 for b in data)
    first = data[0]
    assert first["min"] <= first["avg"] <= first["max"]
    data, _ = envelope(get(hub, path, bucket="10s", **{"from": T0 + 10_100, "to": T0 + 10_120}))
    assert [b["count"] for b in data] == [10, 10]
    assert data[0]["min"] == 10_100.0 and data[0]["max"] == 10_109.0 and data[0]["avg"] == 10_104.5


def test_stats_and_latest(hub: HubProcess, series_sensor: int) -> None:
    base = f"/api/v1/sensors/{series_sensor}"
    stats = envelope(get(hub, f"{base}/stats"))[0]
    assert (stats["count"], stats["min"], stats["max"]) == (300, 10_001.0, 10_300.0)
    assert stats["avg"] == pytest.approx(10_150.5)
    ranged = envelope(get(hub, f"{base}/stats", **{"from": T0 + 10_001, "to": T0 + 10_011}))[0]
    assert (ranged["count"], ranged["min"], ranged["max"]) == (10, 10_001.0, 10_010.0)
    empty = envelope(get(hub, f"{base}/stats", **{"from": 1, "to": 2}))[0]
    assert empty["count"] == 0 and empty["min"] is None
    latest = envelope(get(hub, f"{base}/latest"))[0]
    assert latest["value"] == 10_300.0 and latest["ts"] == T0 + 10_300


@pytest.mark.parametrize(
    "path",
    ["", "/readings", "/series", "/stats", "/latest"],
)
def test_unknown_sensor_is_404(hub: HubProcess, path: str) -> None:
    assert_error(get(hub, f"/api/v1/sensors/987654{path}"), 404, "not_found")


@pytest.mark.parametrize(
    ("suffix", "params", "param"),
    [
        ("/readings", {"limit": "abc"}, "limit"),
        ("/readings", {"limit": "0"}, "limit"),
        ("/readings", {"limit": "100001"}, "limit"),
        ("/readings", {"from": "garbage"}, "from"),
        ("/readings", {"to": "2023-02-30T00:00:00Z"}, "to"),
        ("/readings", {"from": "20", "to": "10"}, "to"),
        ("/series", {"bucket": "7x"}, "bucket"),
        ("/series", {"bucket": "0s"}, "bucket"),
        ("/stats", {"from": "nan"}, "from"),
    ],
)
def test_bad_params_are_400(
    hub: HubProcess, series_sensor: int, suffix: str, params: dict[str, str], param: str
) -> None:
    err = assert_error(get(hub, f"/api/v1/sensors/{series_sensor}{suffix}", **params), 400)
    assert err["details"][0]["param"] == param


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/v1/sensors/abc", {}, "id"),
        ("/api/v1/sensors/abc/readings", {}, "id"),
        ("/api/v1/machines", {"factory_id": "x"}, "factory_id"),
        ("/api/v1/sensors", {"machine_id": "-1"}, "machine_id"),
        ("/api/v1/sensors", {"key": "only/two"}, "key"),
    ],
)
def test_bad_ids_are_400(hub: HubProcess, path: str, params: dict[str, str], param: str) -> None:
    err = assert_error(get(hub, path, **params), 400, "invalid_parameter")
    assert err["details"][0]["param"] == param


# -- operations --------------------------------------------------------------------------


def test_health(hub: HubProcess) -> None:
    assert get(hub, "/health/live", None).status_code == 200
    ready = get(hub, "/health/ready", None)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics(hub: HubProcess) -> None:
    post(hub, "gw1", encode_batch(batch("gw-01", range(1, 4), "ops/metrics/x")))
    post(hub, "gw1", encode_batch(batch("gw-01", range(1, 4), "ops/metrics/x")))
    r = get(hub, "/metrics", None)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    accepted = _sample(text, 'edge_hub_ingest_readings_total{result="accepted"}')
    duplicate = _sample(text, 'edge_hub_ingest_readings_total{result="duplicate"}')
    assert accepted >= 3 and duplicate >= 3
    assert 'edge_hub_http_requests_total{method="POST",route="/api/v1/ingest",status="200"}' in text
    assert 'route="/api/v1/sensors/:id"' in text  # templates, not raw paths


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_openapi_is_served(hub: HubProcess) -> None:
    r = get(hub, "/openapi.json", None)
    assert r.status_code == 200
    assert "/api/v1/ingest" in msgspec.json.decode(r.content)["paths"]


def test_request_id_is_echoed(hub: HubProcess) -> None:
    with hub.client("read") as c:
        r = c.get("/api/v1/factories", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["meta"]["request_id"] == "abc-123"


# -- resources ----------------------------------------------------------------------------


def _db_handles(hub: HubProcess) -> int:
    fd_dir = f"/proc/{hub.proc.pid}/fd"
    names = []
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):  # closed between listdir and readlink
            names.append(os.readlink(f"{fd_dir}/{fd}"))
    return sum(name.endswith("hub.db") for name in names)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_requests_reuse_database_connections(hub: HubProcess) -> None:
    """Robyn calls each handler with a fresh Python thread state, so anything kept per thread
    (threading.local) is made anew per request. The hub once opened a SQLite connection per
    request that way and never closed it: RSS grew ~12 MB per ingest batch."""

    def round_of_requests(first_seq: int) -> None:
        def one(k: int) -> None:
            seqs = range(first_seq + 10 * k, first_seq + 10 * k + 10)
            assert post(hub, "gw1", encode_batch(batch("gw-01", seqs, "res/conn/x"))).is_success
            assert get(hub, "/api/v1/gateways").is_success

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(40)))

    # The reader pool grows to the most requests ever at once (Robyn's worker threads), not
    # with their number: 120 requests here opened 243 handles when it leaked.
    handles = []
    for first_seq in (1, 1001, 2001):
        round_of_requests(first_seq)
        handles.append(_db_handles(hub))
    assert max(handles) <= 16, handles

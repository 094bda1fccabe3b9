"""Central thresholds: admin PUT, config versions in ingest answers, gateway config, alerts."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.storage import Storage, Thresholds
from hub.storage.sqlite import SCHEMA_VERSION
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess
from tests.hub.test_api import assert_error, envelope, get, post, sensor_id

T0 = 1_700_000_000.0


def put(hub: HubProcess, who: str | None, sid: int | str, body: Any) -> httpx.Response:
    with hub.client(who) as c:
        if isinstance(body, bytes):
            return c.put(f"/api/v1/sensors/{sid}/thresholds", content=body)
        return c.put(f"/api/v1/sensors/{sid}/thresholds", json=body)


def ingest(
    hub: HubProcess, who: str, gateway: str, key: str, values: list[float], first_seq: int
) -> dict[str, Any]:
    readings = [WireReading(first_seq + i, key, T0 + i, v) for i, v in enumerate(values)]
    r = post(hub, who, encode_batch(Batch(gateway_id=gateway, readings=readings)))
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def press(hub: HubProcess) -> int:
    """acme's th/press/p with values 50, 105, 5, 60, 130 (reading ts T0..T0+4)."""
    ingest(hub, "gw1", "gw-01", "th/press/p", [50.0, 105.0, 5.0, 60.0, 130.0], 1)
    sid = sensor_id(hub, "th/press/p")
    assert sid is not None
    return sid


def config(hub: HubProcess, who: str, gateway: str) -> dict[str, Any]:
    return envelope(get(hub, f"/api/v1/gateways/{gateway}/config", who))[0]  # type: ignore[no-any-return]


def test_put_needs_admin(hub: HubProcess, press: int) -> None:
    body = {"min": 10.0, "max": 100.0}
    assert_error(put(hub, None, press, body), 401, "unauthorized")
    assert_error(put(hub, "read", press, body), 403, "forbidden")
    assert_error(put(hub, "gw1", press, body), 403, "forbidden")
    assert config(hub, "gw1", "gw-01")["sensors"] == []


def test_put_flows_down_to_the_gateway(hub: HubProcess, press: int) -> None:
    before = config(hub, "gw1", "gw-01")["version"]
    data, meta = envelope(put(hub, "admin", press, {"min": 10, "max": 100.0, "deadband": 2}))
    assert data["id"] == press
    assert data["thresholds"] == {"min": 10.0, "max": 100.0, "deadband": 2.0}
    assert meta["config_version"] == before + 1
    # The next sync answer tells the agent; the config holds the rule.
    answer = ingest(hub, "gw1", "gw-01", "th/other/x", [1.0], 100)
    assert answer["config_version"] == before + 1
    cfg = config(hub, "gw1", "gw-01")
    # Which sensor, of which factory, each of the gateway's keys lands on.
    assert cfg.pop("factory") == "acme"
    factory_id = cfg.pop("factory_id")
    mapped = {m["key"]: m["factory_id"] for m in cfg.pop("mapped_sensors")}
    assert mapped["th/press/p"] == mapped["th/other/x"] == factory_id
    assert cfg == {
        "gateway_id": "gw-01",
        "version": before + 1,
        "sensors": [{"key": "th/press/p", "min": 10.0, "max": 100.0, "deadband": 2.0}],
        "alert_rules": [],
    }
    # The same gateway factory's other gateway sees it too; another factory does not.
    assert config(hub, "gw2", "gw-02")["version"] == before + 1
    assert config(hub, "gw3", "gw-03")["sensors"] == []
    # Repeating a PUT changes nothing, so the version stays.
    _, meta = envelope(put(hub, "admin", press, {"min": 10, "max": 100, "deadband": 2}))
    assert meta["config_version"] == before + 1
    assert envelope(get(hub, f"/api/v1/sensors/{press}"))[0]["thresholds"]["max"] == 100.0


def test_config_is_for_its_own_gateway_or_operators(hub: HubProcess) -> None:
    assert_error(get(hub, "/api/v1/gateways/gw-02/config", "gw1"), 403, "forbidden")
    assert_error(get(hub, "/api/v1/gateways/gw-01/config", None), 401, "unauthorized")
    assert config(hub, "read", "gw-01")["gateway_id"] == "gw-01"
    assert config(hub, "admin", "gw-01")["gateway_id"] == "gw-01"
    assert_error(get(hub, "/api/v1/gateways/nope/config", "admin"), 404, "not_found")


def test_alerts_check_the_last_readings(hub: HubProcess, press: int) -> None:
    envelope(put(hub, "admin", press, {"min": 10.0, "max": 100.0}))
    data, _ = envelope(get(hub, f"/api/v1/sensors/{press}/alerts", limit=100))
    assert data["sensor_id"] == press and data["sensor_name"] == "p"
    assert data["thresholds"] == {"min": 10.0, "max": 100.0}
    assert data["checked_readings"] == 5 and data["alerts_found"] == 3
    got = [(a["value"], a["breach_type"], a["threshold_value"], a["ts"]) for a in data["alerts"]]
    assert got == [
        (105.0, "above_maximum", 100.0, T0 + 1),
        (5.0, "below_minimum", 10.0, T0 + 2),
        (130.0, "above_maximum", 100.0, T0 + 4),
    ]
    assert [a["severity"] for a in data["alerts"]] == ["medium", "critical", "critical"]
    assert all(isinstance(a["reading_id"], int) for a in data["alerts"])
    # Only the last 2 readings: 60 and 130.
    last2 = envelope(get(hub, f"/api/v1/sensors/{press}/alerts", limit=2))[0]
    assert last2["checked_readings"] == 2 and [a["value"] for a in last2["alerts"]] == [130.0]
    assert_error(get(hub, f"/api/v1/sensors/{press}/alerts", "gw1"), 403)
    assert_error(get(hub, "/api/v1/sensors/999999/alerts"), 404)
    assert_error(get(hub, f"/api/v1/sensors/{press}/alerts", limit="x"), 400)


def test_clearing_thresholds_removes_the_rule(hub: HubProcess, press: int) -> None:
    version = config(hub, "admin", "gw-01")["version"]
    data, meta = envelope(put(hub, "admin", press, {"min": None, "max": None}))
    assert data["thresholds"] == {"min": None, "max": None, "deadband": 0.0}
    assert meta["config_version"] == version + 1
    assert config(hub, "gw1", "gw-01")["sensors"] == []
    alerts = envelope(get(hub, f"/api/v1/sensors/{press}/alerts"))[0]
    assert alerts["alerts_found"] == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"min": 10, "max": 5}, 422, "min"),
        ({"min": "ten"}, 422, "min"),
        ({"max": True}, 422, "max"),
        ({"min": 1, "deadband": -1}, 422, "deadband"),
        (b'{"max": 1e999}', 422, "max"),
        (b'{"max": NaN}', 400, None),
        ({"min": 1, "maximum": 5}, 422, "body"),
        ([1, 2], 422, "body"),
        (b"{not json", 400, None),
        (b"", 400, None),
    ],
)
def test_invalid_thresholds_are_rejected(
    hub: HubProcess, press: int, body: Any, status: int, field: str | None
) -> None:
    before = envelope(get(hub, f"/api/v1/sensors/{press}"))[0]["thresholds"]
    err = assert_error(put(hub, "admin", press, body), status)
    if field:
        assert err["details"][0]["field"] == field
    assert envelope(get(hub, f"/api/v1/sensors/{press}"))[0]["thresholds"] == before


def test_put_on_unknown_or_bad_sensor(hub: HubProcess) -> None:
    assert_error(put(hub, "admin", 999_999, {"min": 1}), 404, "not_found")
    assert_error(put(hub, "admin", "abc", {"min": 1}), 400, "invalid_parameter")


def test_unknown_routes_get_the_404_envelope(hub: HubProcess) -> None:
    for path in ["/nope", "/api/v1/nope", "/api/v1/sensors/1/nope/deeper"]:
        err = assert_error(get(hub, path, None), 404, "not_found")
        assert path in err["message"]
    with hub.client("admin") as c:
        assert_error(c.post("/api/v1/sensors/1/nope", json={}), 404, "not_found")
        assert_error(c.delete("/api/v1/whatever"), 404, "not_found")
    # "/" is the operator console: without a session, its sign-in page.
    console = get(hub, "/", None)
    assert (console.status_code, console.headers["location"]) == (303, "/login")
    # Real routes and the framework's own pages are unaffected.
    assert get(hub, "/openapi.json", None).status_code == 200
    assert get(hub, "/docs", None).status_code == 200


# -- storage ------------------------------------------------------------------------------


def test_schema_v1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE factories (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                                created_at REAL NOT NULL);
        CREATE TABLE machines (id INTEGER PRIMARY KEY, factory_id INTEGER NOT NULL,
            line TEXT NOT NULL, name TEXT NOT NULL, created_at REAL NOT NULL,
            UNIQUE (factory_id, line, name));
        CREATE TABLE sensors (id INTEGER PRIMARY KEY, machine_id INTEGER NOT NULL,
            factory_id INTEGER NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, unit TEXT,
            min_threshold REAL, max_threshold REAL, created_at REAL NOT NULL,
            UNIQUE (factory_id, key));
        INSERT INTO factories VALUES (1, 'acme', 0);
        INSERT INTO machines VALUES (1, 1, 'l', 'm', 0);
        INSERT INTO sensors VALUES (1, 1, 1, 'l/m/s', 's', NULL, 1.0, 2.0, 0);
        PRAGMA user_version=1;
        """
    )
    conn.close()
    storage = Storage(str(path))
    storage.init_schema()
    storage.init_schema()  # idempotent
    row = storage.get_sensor(1)
    assert row is not None and row["deadband"] == 0.0 and row["max_threshold"] == 2.0
    assert storage.set_thresholds(1, Thresholds(1.0, 3.0, 0.5)) == 1
    assert storage.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    storage.close()


def test_alerts_without_the_native_module_are_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.api.thresholds import sensor_alerts
    from hub.errors import ApiError
    from tests.hub.test_anomaly import seed

    storage = Storage(str(tmp_path / "hub.db"))
    storage.init_schema()
    sid = seed(storage, "n/o/tc", [1.0, 2.0])
    monkeypatch.setitem(sys.modules, "threshold_checker", None)  # import now fails
    with pytest.raises(ApiError) as err:
        sensor_alerts(storage, str(sid), {})
    assert err.value.status == 503 and err.value.code == "threshold_checker_unavailable"
    storage.close()

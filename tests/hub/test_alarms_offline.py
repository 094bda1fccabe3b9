"""Gateway offline through a real hub on both engines: the hub's worker opens ONE alert for a
gateway that stops syncing (its sensors read as stale, none raises an alert of its own), the
next sync clears it, and both transitions reach a webhook as gateway.offline/gateway.online."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, start_hub, token
from tests.hub.test_webhooks import SECRET, Receiver, Toml

T0 = 1_700_000_000.0
KEYS = ["off/m1/temp", "off/m1/rpm", "off/m2/temp"]


@pytest.fixture(scope="module")
def watched(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[tuple[HubProcess, Receiver]]:
    receiver = Receiver(fail_first=0)
    server = start_hub(
        tmp_path_factory.mktemp("watched"),
        database=hub_database,
        alerts=Toml("{gateway_offline_after_s = 1.0, check_interval_s = 0.1}"),
        webhooks=Toml(
            f'[{{url = "{receiver.url}/gw", secret = "{SECRET}", '
            'events = ["gateway.offline", "gateway.online"]}]'
        ),
    )
    server.tokens = {
        "gw1": token(server.config, "gateway", "add", "gw-01", "--factory", "acme"),
        "read": token(server.config, "token", "add", "--role", "read"),
    }
    yield server, receiver
    assert server.stop() == 0
    receiver.close()


def sync(hub: HubProcess, seq: int) -> None:
    readings = [WireReading(seq + i, k, T0 + seq + i, 1.0, None) for i, k in enumerate(KEYS)]
    body = encode_batch(Batch(gateway_id="gw-01", readings=readings))
    with hub.client("gw1") as c:
        assert c.post("/api/v1/ingest", content=body).status_code == 200


def wait_until(check: Callable[[], Any], within: float = 30.0) -> Any:
    """Poll the hub's API until ``check`` answers truthy (``within`` detects a hang only)."""
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, "condition not reached"
            return got
        time.sleep(0.05)


def test_silent_gateway_is_one_alert_and_clears_on_sync(
    watched: tuple[HubProcess, Receiver],
) -> None:
    hub, receiver = watched
    sync(hub, 1)
    with hub.client("read") as c:

        def offline() -> list[dict[str, Any]]:
            rows = c.get("/api/v1/alerts", params={"kind": "gateway_offline"}).json()["data"]
            return [r for r in rows if r["state"] == "active"]

        [alert] = wait_until(offline)
        assert alert["gateway_id"] == "gw-01" and alert["sensor_id"] is None
        # one alert for the gateway, none for its three sensors; they read as stale
        assert c.get("/api/v1/alerts").json()["meta"]["total"] == 1
        sensors = c.get("/api/v1/sensors").json()["data"]
        assert sorted(s["key"] for s in sensors if s["stale"]) == sorted(KEYS)
        one = c.get(f"/api/v1/sensors/{sensors[0]['id']}").json()["data"]
        assert one["stale"] is True

        sync(hub, 10)  # the gateway is back
        got = c.get(f"/api/v1/alerts/{alert['id']}").json()["data"]
        assert got["state"] == "cleared"
        assert [e["action"] for e in got["journal"]] == ["opened", "cleared"]
        assert not any(s["stale"] for s in c.get("/api/v1/sensors").json()["data"])
    events = [b["event"] for b in receiver.wait_for(2)]
    assert events == ["gateway.offline", "gateway.online"]

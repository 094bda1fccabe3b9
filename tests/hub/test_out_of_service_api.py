"""Out of service over HTTP, against a real hub on both engines and a real webhook receiver:
nothing is sent for a sensor out of service (its own record, or its machine in MAINTENANCE),
alerts open and are announced again when it is back, and bad requests get a clear 4xx."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.edge_alerts import threshold_alert
from tests.hub.conftest import start_hub, token
from tests.hub.test_webhooks import SECRET, T0, Receiver, Toml, ingest

KEY = "svc/m1/temp"
FIRST = threshold_alert(KEY, T0)


def test_out_of_service_silences_a_sensor_until_it_is_back(
    tmp_path: Path, database_url: str
) -> None:
    receiver = Receiver(fail_first=0)
    hub = start_hub(
        tmp_path,
        database=database_url,
        webhooks=Toml(f'[{{url = "{receiver.url}/all", secret = "{SECRET}"}}]'),
    )
    try:
        hub.tokens = {
            "gw1": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme"),
            "operator": token(hub.config, "token", "add", "--role", "operator"),
            "admin": token(hub.config, "token", "add", "--role", "admin"),
            "read": token(hub.config, "token", "add", "--role", "read"),
            "gw2": token(hub.config, "gateway", "add", "gw-02", "--factory", "elsewhere"),
        }
        # an operator of another factory only
        hub.tokens["scoped"] = token(
            hub.config, "token", "add", "--role", "operator", "--factory", "elsewhere"
        )
        ingest(hub, 1, FIRST)
        [opened] = receiver.wait_for(1)
        first_id = opened["alert"]["id"]
        with hub.client("operator") as c:
            [sensor] = c.get("/api/v1/sensors", params={"key": KEY}).json()["data"]
            act = f"/api/v1/sensors/{sensor['id']}"
            # bad requests change nothing
            assert c.post("/api/v1/sensors/999999/out-of-service", json={}).status_code == 404
            r = c.post(f"{act}/out-of-service", json={"comment": "x" * 2001})
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "comment"
            assert c.post(f"{act}/out-of-service", json={"why": 1}).status_code == 422
            assert c.post("/api/v1/sensors/abc/out-of-service", json={}).status_code == 400
            assert c.post(f"{act}/in-service", json={}).status_code == 409
            with hub.client("read") as reader:
                assert reader.post(f"{act}/out-of-service", json={}).status_code == 403
            with hub.client("scoped") as other:  # another factory's sensor: as if missing
                assert other.post(f"{act}/out-of-service", json={}).status_code == 404
            r = c.post(f"{act}/out-of-service", json={"comment": "recalibration"})
            assert r.status_code == 200, r.text
            state = r.json()["data"]
            assert state["out_of_service"] is True and state["machine"] is None
            assert state["sensor"]["comment"] == "recalibration"
            assert state["sensor"]["by"]["role"] == "operator"
            assert state["sensor"]["by"]["kind"] == "token"
            assert c.post(f"{act}/out-of-service", json={}).status_code == 409
            alert = c.get(f"/api/v1/alerts/{first_id}").json()["data"]
            assert alert["out_of_service"] is True
            assert alert["out_of_service_comment"] == "recalibration"
            assert alert["journal"][-1]["action"] == "out_of_service"
            # while out of service: an escalation and a new alert send nothing, open nothing
            ingest(hub, 2, msgspec.structs.replace(FIRST, severity="critical", value=99.0))
            second = msgspec.structs.replace(FIRST, id=2, breach_type="below_minimum")
            ingest(hub, 3, second)
            assert [a["id"] for a in c.get("/api/v1/alerts").json()["data"]] == [first_id]
            # the readings are stored as always
            stats = c.get(f"{act}/stats").json()["data"]
            assert stats["count"] == 3
            r = c.post(f"{act}/in-service", json={"comment": "done"})
            assert r.status_code == 200 and r.json()["data"]["out_of_service"] is False
        got = receiver.wait_for(2)
        assert [(b["event"], b["reannounced"]) for b in got] == [
            ("alert.opened", False),
            ("alert.opened", True),
        ]
        assert got[1]["alert"]["id"] == first_id and got[1]["alert"]["severity"] == "critical"
        assert got[1]["alert"]["out_of_service"] is False
        # the alert held back meanwhile joins the sensor's alert still active (one alarm per
        # sensor), below its severity: journaled, not announced
        with hub.client("read") as c:
            alert = c.get(f"/api/v1/alerts/{first_id}").json()["data"]
        assert alert["journal"][-1]["action"] == "source_opened"
        assert "below_minimum" in alert["journal"][-1]["comment"]
        # a machine in MAINTENANCE: its sensors' clears and new alerts send nothing ...
        with hub.client("admin") as c:
            r = c.patch(f"/api/v1/machines/{sensor['machine_id']}", json={"status": "MAINTENANCE"})
            assert r.status_code == 200, r.text
            ingest(hub, 4, msgspec.structs.replace(FIRST, closed_at=T0 + 50))
            ingest(hub, 5, msgspec.structs.replace(second, closed_at=T0 + 50))
            third = msgspec.structs.replace(FIRST, id=3, opened_at=T0 + 60)
            ingest(hub, 6, third)
            assert len(c.get("/api/v1/alerts").json()["data"]) == 1
            # ... and back to OPERATIONAL the alert still active at the edge opens
            r = c.patch(f"/api/v1/machines/{sensor['machine_id']}", json={"status": "OPERATIONAL"})
            assert r.status_code == 200, r.text
        got = receiver.wait_for(3)
        assert got[2]["event"] == "alert.opened" and got[2]["alert"]["value"] == third.value
        assert got[2]["alert"]["state"] == "active"
        assert len(receiver.requests) == 3  # nothing else was sent meanwhile
    finally:
        assert hub.stop() == 0
        receiver.close()

"""Regenerate docs/api.md from a live system: every example there is a real answer.

Usage: python -m devtools.api_examples   (needs mosquitto and a built anomaly-detector)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from devtools.stack import REPO, Agent, Broker, Detector, Hub, stopping, wait_for

INTRO = """# API reference

The hub answers under `/api/v1` with `Authorization: Bearer <token>`. Tokens come from
`edge-hub gateway add` (role `gateway`) and `edge-hub token add --role read|admin`.

* Success: `{"data": ..., "meta": {"request_id": ..., "timestamp": ...}}`
* Error: `{"error": {"code": ..., "message": ..., "details": [...]}, "meta": {...}}` with
  400 (malformed), 401 (no or unknown token), 403 (wrong role, another gateway's data),
  404, 409, 413 (body too large), 422 (valid JSON, invalid content), 503 (a dependency down).
* Times: `ts` is epoch seconds; `time` the same in RFC 3339. Query parameters `from`/`to`
  take either.
* `/openapi.json` and `/docs` describe the same routes for tools.

Every example below was produced by `python -m devtools.api_examples` against a live hub,
agent, broker and anomaly-detector; only ids, tokens and times differ from run to run.
"""


def _show(
    lines: list[str], title: str, method: str, path: str, resp: httpx.Response, note: str = ""
) -> None:
    lines.append(f"## {title}\n")
    if note:
        lines.append(note + "\n")
    lines.append(f"`{method} {path}` → **{resp.status_code}**\n")
    try:
        body = json.dumps(resp.json(), indent=2)
    except ValueError:
        body = resp.text
    if len(body) > 2500:
        body = body[:2500] + "\n..."
    lines.append("```json\n" + body + "\n```\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        broker = Broker(wd).start()
        detector = Detector(wd).start()
        hub = Hub(wd, anomaly_url=detector.url)
        token = hub.add_gateway("gw-01", "plant-1")
        admin = hub.cli("token", "add", "--role", "admin")
        hub.start()
        agent = Agent(wd, gateway_id="gw-01", mqtt_port=broker.port, hub_url=hub.url, token=token)
        with stopping(broker, detector, hub, agent):
            agent.start()
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            t0 = time.time() - 120
            for i in range(60):
                value = 21.0 + (i % 7) * 0.1 + (15.0 if i == 40 else 0.0)
                pub.publish(
                    "factory/line1/press4/temp",
                    json.dumps({"value": value, "ts": t0 + 2 * i, "unit": "C"}),
                    qos=1,
                ).wait_for_publish()
            pub.publish("factory/line1/press4/rpm", "1200", qos=1).wait_for_publish()
            pub.loop_stop()
            wait_for(
                "readings at the hub",
                lambda: sum(hub.counts_by_sensor().values()) == 61,
                timeout=30,
            )
            lines = [INTRO]
            with hub.client() as c, hub.client(admin) as a:
                sensor = c.get("/api/v1/sensors", params={"key": "line1/press4/temp"}).json()[
                    "data"
                ][0]
                sid = sensor["id"]
                gets = [
                    ("Gateways", "/api/v1/gateways", {}),
                    ("One gateway", "/api/v1/gateways/gw-01", {}),
                    ("Factories", "/api/v1/factories", {}),
                    (
                        "Machines of a factory",
                        "/api/v1/machines",
                        {"factory_id": sensor.get("factory_id", 1)},
                    ),
                    ("Sensors by key", "/api/v1/sensors", {"key": "line1/press4/temp"}),
                    ("A sensor", f"/api/v1/sensors/{sid}", {}),
                    ("Raw readings", f"/api/v1/sensors/{sid}/readings", {"limit": 3}),
                    ("Series", f"/api/v1/sensors/{sid}/series", {"bucket": "1m"}),
                    ("Stats", f"/api/v1/sensors/{sid}/stats", {}),
                    ("Latest", f"/api/v1/sensors/{sid}/latest", {}),
                ]
                for title, path, params in gets:
                    r = c.get(path, params=params)
                    q = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
                    _show(lines, title, "GET", path + q, r)
                r = a.put(
                    f"/api/v1/sensors/{sid}/thresholds",
                    json={"min": 15.0, "max": 30.0, "deadband": 0.5},
                )
                _show(
                    lines,
                    "Set thresholds (admin)",
                    "PUT",
                    f"/api/v1/sensors/{sid}/thresholds",
                    r,
                    'Body: `{"min": 15.0, "max": 30.0, "deadband": 0.5}`. '
                    "The gateway picks the change up within one sync.",
                )
                with hub.client(token) as g:
                    _show(
                        lines,
                        "A gateway's rules",
                        "GET",
                        "/api/v1/gateways/gw-01/config",
                        g.get("/api/v1/gateways/gw-01/config"),
                    )
                _show(
                    lines,
                    "Threshold alerts",
                    "GET",
                    f"/api/v1/sensors/{sid}/alerts?limit=100",
                    c.get(f"/api/v1/sensors/{sid}/alerts", params={"limit": 100}),
                    "A fresh check of the last N readings in Rust (threshold_checker), "
                    "plus the alerts the edge raised.",
                )
                _show(
                    lines,
                    "Anomalies",
                    "GET",
                    f"/api/v1/sensors/{sid}/anomalies?limit=100&threshold=2.0",
                    c.get(
                        f"/api/v1/sensors/{sid}/anomalies", params={"limit": 100, "threshold": 2.0}
                    ),
                )
                detector.stop()
                _show(
                    lines,
                    "Anomalies with anomaly-detector down",
                    "GET",
                    f"/api/v1/sensors/{sid}/anomalies",
                    c.get(f"/api/v1/sensors/{sid}/anomalies"),
                    "Every other endpoint keeps answering.",
                )
                _show(
                    lines,
                    "No token",
                    "GET",
                    "/api/v1/sensors",
                    httpx.get(f"{hub.url}/api/v1/sensors"),
                )
                _show(
                    lines,
                    "Wrong role",
                    "PUT",
                    f"/api/v1/sensors/{sid}/thresholds",
                    c.put(f"/api/v1/sensors/{sid}/thresholds", json={"max": 1.0}),
                )
                _show(
                    lines,
                    "Bad parameter",
                    "GET",
                    f"/api/v1/sensors/{sid}/readings?limit=abc",
                    c.get(f"/api/v1/sensors/{sid}/readings", params={"limit": "abc"}),
                )
                _show(
                    lines,
                    "Unknown sensor",
                    "GET",
                    "/api/v1/sensors/999999",
                    c.get("/api/v1/sensors/999999"),
                )
                with hub.client(token) as g:
                    bad = {
                        "gateway_id": "gw-01",
                        "readings": [
                            [1, "line1/press4/temp", 1.0, 2.0, None],
                            [2, "no-key", 1.0, 2.0, None],
                        ],
                    }
                    _show(
                        lines,
                        "Ingest: a bad batch is rejected whole",
                        "POST",
                        "/api/v1/ingest",
                        g.post("/api/v1/ingest", json=bad),
                        "The agent moves exactly the named readings to its dead letters "
                        "and sends the rest again.",
                    )
                    other = {"gateway_id": "gw-02", "readings": []}
                    _show(
                        lines,
                        "Ingest for another gateway",
                        "POST",
                        "/api/v1/ingest",
                        g.post("/api/v1/ingest", json=other),
                    )
        (REPO / "docs" / "api.md").write_text("\n".join(lines))
        print("wrote docs/api.md")


if __name__ == "__main__":
    main()

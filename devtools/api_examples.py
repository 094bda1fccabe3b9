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
  400 (malformed, or a body shorter than its Content-Length), 401 (no or unknown token),
  403 (wrong role, another gateway's data), 404, 405 (method not served here; `Allow`
  lists those that are), 409, 413 (body too large), 422 (valid JSON, invalid content:
  details name each field, reading `seq` or `alert_id`), 429 (rate limit or read budget;
  `Retry-After`), 503 (a dependency down).
* Ranges: ids, counts (`backlog`, `dropped`, `dead_letters`) and alert ids up to 2^63-1,
  reading seqs up to 2^40-1, times from 1970 to 9999-12-31T23:59:59Z; a sensor key is
  `line/machine/sensor` with three non-blank segments of at most 128 characters, without
  control or invisible characters. Outside: a 4xx naming the field, nothing stored.
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


def limit_examples(lines: list[str], url: str, c: httpx.Client, g: httpx.Client, sid: int) -> None:
    """Where the hub draws its lines: methods, time ranges, new sensors, large reads."""
    _show(
        lines,
        "Wrong method",
        "DELETE",
        "/api/v1/gateways",
        httpx.delete(f"{url}/api/v1/gateways"),
        "A known path asked with a method it does not serve: 405 with `Allow`. Every GET "
        "route also answers HEAD (same status and headers, no body) and every route "
        "OPTIONS (204 with `Allow`); an unknown path is a 404 whatever the method.",
    )
    _show(
        lines,
        "A time past the year 9999",
        "GET",
        f"/api/v1/sensors/{sid}/readings?to=9999-12-31T23:59:59-01:00",
        c.get(f"/api/v1/sensors/{sid}/readings", params={"to": "9999-12-31T23:59:59-01:00"}),
        "`from`/`to` take epoch seconds 0 to 253402300799 or RFC 3339 in that range.",
    )
    many = [[10_000 + i, f"line9/m/s{i}", time.time() - 60, 1.0, None] for i in range(1001)]
    _show(
        lines,
        "Ingest: too many new sensors",
        "POST",
        "/api/v1/ingest",
        g.post("/api/v1/ingest", json={"gateway_id": "gw-01", "readings": many}),
        "A batch may create at most `max_new_sensors_per_batch` sensors (default 1000), a "
        "factory hold at most `max_sensors_per_factory` (default 10000). The readings past "
        "the limit are named by seq, nothing of the batch is stored, and the agent moves "
        "those readings to its dead letters.",
    )
    r = c.get(f"/api/v1/sensors/{sid}/readings", params={"limit": 100_000})
    while r.status_code == 200:
        r = c.get(f"/api/v1/sensors/{sid}/readings", params={"limit": 100_000})
    _show(
        lines,
        "Large reads: the read budget",
        "GET",
        f"/api/v1/sensors/{sid}/readings?limit=100000",
        r,
        "A readings or series request that may answer more than `heavy_read_rows` rows "
        "(default 10000) takes that many from its token's row budget "
        "(`read_budget_rows_per_s`, `read_budget_burst_rows`), and at most "
        "`max_concurrent_heavy_reads` run at once. Past either: 429 with Retry-After.",
    )


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
                    limit_examples(lines, hub.url, c, g, sid)
        (REPO / "docs" / "api.md").write_text("\n".join(lines))
        print("wrote docs/api.md")


if __name__ == "__main__":
    main()

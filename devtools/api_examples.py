"""Regenerate docs/api.md from a live system: every example there is a real answer.

Usage: python -m devtools.api_examples   (needs mosquitto and a built anomaly-detector)
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import paho.mqtt.publish as mqtt_publish

from devtools.api_examples_alarms import alarm_examples
from devtools.api_examples_people import people_examples
from devtools.api_examples_scopes import scope_examples
from devtools.stack import REPO, Agent, Broker, Detector, Hub, stopping, wait_for

INTRO = """# API reference

The hub answers under `/api/v1` with `Authorization: Bearer <token>`. Tokens come from
`edge-hub gateway add` (role `gateway`) and `edge-hub token add --role read|operator|admin`.
Lists are paged (`page`, `per_page`; `meta` page numbers and `links`), and every change
made with an admin's or operator's token is in the change log (`GET /api/v1/audit`).
A token made with `--factory NAME` (or a person limited to factories) sees only those
factories: anything of another answers 404 as if it did not exist, and lists leave it out
(see the last sections).

* Success: `{"data": ..., "meta": {"request_id": ..., "timestamp": ...}}`
  (history reads, on a hub with a `read_database`, also `meta.lag_s`: how many seconds
  the database that answered was behind the primary; docs/operations.md)
* Error: `{"error": {"code": ..., "message": ..., "details": [...]}, "meta": {...}}` with
  400 (malformed, or a body shorter than its Content-Length), 401 (no or unknown token),
  403 (wrong role, another gateway's data), 404, 405 (method not served here; `Allow`
  lists those that are), 409, 413 (body too large), 422 (valid JSON, invalid content:
  details name each field, reading `seq` or `alert_id`), 429 (rate limit or read budget;
  `Retry-After`), 503 (a dependency down).
* Ranges: ids, counts (`backlog`, `dropped`, `dead_letters`) and alert ids up to 2^63-1,
  reading seqs up to 2^40-1, times from 1970 to 9999-12-31T23:59:59Z; a sensor key is
  `line/machine/sensor` with three non-blank segments of at most 128 characters, without
  control or invisible characters. Reading values, thresholds and alert rule limits lie
  within ±1e15 (larger values would overflow the sums the hub keeps per minute, hour and
  half-day). Text fields (names, locations, types, units, comments) hold no control or
  invisible characters, NUL included. Names are compared in Unicode NFC: `café` typed with
  a precomposed `é` or with `e` and a combining accent is one name (creating it again is a
  409, and readings sent under either form land on one sensor). Outside: a 4xx naming the
  field, nothing stored.
* Times: `ts` is epoch seconds; `time` the same in RFC 3339. Query parameters `from`/`to`
  take either.
* Who acted: journal entries, change log rows, `acknowledged_by` and webhook events name
  them as `by: {"kind", "name", "display", "role", "token_id"}`. `kind` is `user` (a
  person signed in; `name` their user name, `display` their full name, `token_id` null),
  `token` (`name` the label given with `edge-hub token add --name`, else null), `gateway`
  (`name` its id) or `system` (the hub itself: offline alerts, shelves running out,
  chattering; or `edge-hub` on the command line, `name` `cli`). Each is kept as it was at
  the time: a display name changed or an account removed later leaves past acts as they
  read. Acts recorded before hubs kept names read as `kind` `token` (or `gateway`,
  `system` by their role) with `name` null.
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
    fence = "json"
    if resp.status_code == 204:
        body = "(no body)"
        fence = ""
    elif resp.headers.get("content-type", "").startswith("text/csv"):
        body, fence = resp.text.rstrip(), "csv"
    else:
        try:
            body = json.dumps(resp.json(), indent=2)
        except ValueError:
            body = resp.text
    if len(body) > 2500:
        body = body[:2500] + "\n..."
    lines.append(f"```{fence}\n" + body + "\n```\n")


def model_examples(lines: list[str], c: httpx.Client, a: httpx.Client, sid: int) -> None:
    """The seeds' CRUD (admin), paged lists, back-fill, rolling/CSV, the report, the log."""
    factory = {"name": "plant-2", "location": "Lyon"}
    r = a.post("/api/v1/factories", json=factory)
    fid = r.json()["data"]["id"]
    _show(
        lines,
        "Create a factory (admin)",
        "POST",
        "/api/v1/factories",
        r,
        'Body: `{"name": "plant-2", "location": "Lyon"}`. 201 with the new object.',
    )
    machine = {
        "factory_id": fid,
        "line": "line2",
        "name": "lathe1",
        "type": "CNC_LATHE",
        "status": "OPERATIONAL",
    }
    r = a.post("/api/v1/machines", json=machine)
    mid = r.json()["data"]["id"]
    _show(
        lines,
        "Create a machine (admin)",
        "POST",
        "/api/v1/machines",
        r,
        "Body: " + "`" + json.dumps(machine) + "`. `status`: OPERATIONAL, MAINTENANCE or OFFLINE. "
        "When another factory has a machine on that line with that name (its sensors' keys "
        "would be the same, and a gateway's readings land on the sensor of its own factory), "
        "the 201's `meta.warnings` has `key_in_other_factory` naming it: a warning, since two "
        "plants with a `line1` each are normal.",
    )
    sensor = {"machine_id": mid, "name": "spindle", "unit": "rpm", "max_threshold": 9000}
    r = a.post("/api/v1/sensors", json=sensor)
    new_sid = r.json()["data"]["id"]
    _show(
        lines,
        "Create a sensor before its first reading (admin)",
        "POST",
        "/api/v1/sensors",
        r,
        "Its key is the machine's line and name and its own name: data a gateway of its "
        "factory sends for `line2/lathe1/spindle` later lands on it. `meta.fed_by` names "
        "those gateways (`meta.warnings` has `no_gateway` when there are none: readings of "
        "the key from another factory's gateway land on that factory's sensor). When another "
        "factory has a sensor with that key, `meta.warnings` has `key_in_other_factory` "
        "naming it (`others`: its id and factory), and `GET /sensors?key=...&factory_id=` "
        "tells the two apart.",
    )
    _show(
        lines,
        "Change a machine (admin)",
        "PATCH",
        f"/api/v1/machines/{mid}",
        a.patch(f"/api/v1/machines/{mid}", json={"status": "MAINTENANCE"}),
        'Body: `{"status": "MAINTENANCE"}`. Line and name change only while the machine has '
        "no sensors (they are part of its sensors' keys): else 409.",
    )
    _show(
        lines,
        "A duplicate name",
        "POST",
        "/api/v1/factories",
        a.post("/api/v1/factories", json=factory),
        "A taken name, or deleting a factory with machines or gateways (a machine with "
        "sensors): 409.",
    )
    _show(
        lines,
        "A bad body",
        "POST",
        "/api/v1/sensors",
        a.post("/api/v1/sensors", json={"machine_id": mid, "name": "a/b", "unit": "\x07"}),
        "422 naming every bad field. Names are key segments (no `/`, no control or "
        "invisible characters, at most 128); text fields are bounded.",
    )
    _show(
        lines,
        "A page of a list",
        "GET",
        "/api/v1/factories?page=2&per_page=1",
        c.get("/api/v1/factories", params={"page": 2, "per_page": 1}),
        "Every list takes `page` (from 1) and `per_page` (default 100, at most 1000) and "
        "answers `meta` page numbers and `links`; `next` is null on the last page.",
    )
    now = time.time()
    rows = [
        {"sensor_id": new_sid, "value": 5000.0 + 10 * i, "timestamp": now - 3600 + 60 * i}
        for i in range(30)
    ]
    _show(
        lines,
        "Bulk back-fill (admin)",
        "POST",
        "/api/v1/readings/bulk",
        a.post("/api/v1/readings/bulk", json=rows),
        'Body: `[{"sensor_id": ..., "value": ..., "timestamp": ...}, ...]` (epoch seconds or '
        "RFC 3339, inside the hub's ts window), at most 10000 rows. All or nothing: a bad "
        "row is a 422 naming its index.",
    )
    _show(
        lines,
        "The same body again",
        "POST",
        "/api/v1/readings/bulk",
        a.post("/api/v1/readings/bulk", json=rows),
        "Each (sensor, timestamp) is stored once, however often it is posted.",
    )
    params = {"rolling": 3, "limit": 3}
    _show(
        lines,
        "Readings with a rolling average",
        "GET",
        f"/api/v1/sensors/{new_sid}/readings?rolling=3&limit=3",
        c.get(f"/api/v1/sensors/{new_sid}/readings", params=params),
        "`rolling_avg`: the average of the last N readings up to each one (reaching back "
        "before `from`).",
    )
    _show(
        lines,
        "Readings as CSV",
        "GET",
        f"/api/v1/sensors/{sid}/readings?format=csv&limit=3",
        c.get(f"/api/v1/sensors/{sid}/readings", params={"format": "csv", "limit": 3}),
        "Without `limit`, the whole range [`from`, `to`) comes back, streamed in pages "
        "(chunked transfer, `X-Truncated: false`): nothing is cut. Each page is charged to "
        "the read budget as it is read: the first before the answer starts (429 when the "
        "budget is spent), later ones by slowing the stream to the budget's rate. A "
        "failure mid-way (the database gone) ends the file with the line `# export failed "
        "here: the rows above are complete, ask again for the rest`, which no export has "
        "otherwise: a cut file never looks whole. With `limit`, one page: `X-Truncated` "
        "and `X-Next-From` carry what `meta` says in JSON.",
    )
    _show(
        lines,
        "A factory report",
        "GET",
        f"/api/v1/factories/{fid}/report",
        c.get(f"/api/v1/factories/{fid}/report"),
        "Per sensor: min/max/avg/count (from rollups), alerts and seconds in alert in the "
        "range (`from`/`to`; overlapping alerts count once); `?format=csv` as CSV: every "
        "sensor of the factory, streamed, unless `page`/`per_page` ask for one page, as a "
        "file named for the factory and the period "
        "(`plant-2-report-2026-12-01T0800Z-2026-12-02T0800Z.csv`; `start` without `from`), "
        "averages rounded to 4 significant digits, min and max exact as stored.",
    )
    _show(
        lines,
        "Delete a sensor (admin)",
        "DELETE",
        f"/api/v1/sensors/{new_sid}",
        a.delete(f"/api/v1/sensors/{new_sid}"),
        "204. Its readings, rollups, anomalies, rules and alerts go with it.",
    )
    _show(
        lines,
        "The change log (admin)",
        "GET",
        "/api/v1/audit?per_page=3",
        a.get("/api/v1/audit", params={"per_page": 3}),
        "Every change made by a person or with a token, with who made it (`by`) and when, "
        "newest first; filters `target`, `target_id`, `token_id`, `from`, `to`.",
    )
    _show(
        lines,
        "Startup probe",
        "GET",
        "/health/startup",
        httpx.get(f"{str(c.base_url).rstrip('/')}/health/startup"),
        "200 once the schema is at this release's version; 503 before.",
    )


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
        "Every read that can answer many rows is charged what it may answer: readings "
        "(`limit`, plus `rolling` - 1 read before the range), a series (its buckets: "
        "`points`, else `limit`, or fewer when the range bounds it; a missing `to` counts "
        "as now), a sensor's alerts (2 x `limit`: the readings checked and the edge alerts "
        "beside them), anomalies (`limit`), every paged list and the factory report "
        "(`per_page`; the report's alert intervals once read) and a CSV export page by "
        "page. A request that may answer more than `heavy_read_rows` rows (default 10000) "
        "takes that many from its token's row budget (`read_budget_rows_per_s`, "
        "`read_budget_burst_rows`), and at most `max_concurrent_heavy_reads` run at once. "
        "Past either: 429 with Retry-After. `stats` and `latest` answer one row (from "
        "rollups) and are not charged.",
    )


def _publisher(port: int) -> Callable[[str, float], None]:
    def publish(key: str, value: float) -> None:
        body = json.dumps({"value": value})
        mqtt_publish.single(f"factory/{key}", body, qos=1, hostname="127.0.0.1", port=port)

    return publish


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        broker = Broker(wd).start()
        detector = Detector(wd).start()
        hub = Hub(wd, anomaly_url=detector.url)
        token = hub.add_gateway("gw-01", "plant-1")
        admin = hub.cli("token", "add", "--role", "admin", "--name", "plant admin")
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
                    (
                        "Series for a chart: points",
                        f"/api/v1/sensors/{sid}/series",
                        {"points": 3},
                    ),
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
                        "`mapped_sensors`: every sensor the gateway's keys land on, those of "
                        "its own factory (`factory_id`, `factory`), whatever another factory "
                        "holds under the same key.",
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
                model_examples(lines, c, a, sid)
                alarm_examples(lines, _show, hub, c, a, _publisher(broker.port))
                scope_examples(lines, _show, hub, a)
                people_examples(lines, _show, a)
        (REPO / "docs" / "api.md").write_text("\n".join(lines))
        print("wrote docs/api.md")


if __name__ == "__main__":
    main()

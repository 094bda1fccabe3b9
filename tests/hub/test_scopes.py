"""Factory scopes through a real hub with real scoped tokens, on both engines: a token limited
to the factory "north" sees north's gateways, machines, sensors, readings, alerts, reports and
audit; an id of "south" answers the 404 a missing id answers; lists, totals and the alarm
report leave south out; forged writes on south are refused and change nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.hub.conftest import HubProcess, run_cli, start_hub, token

# An hour ago: an alert opened more than [alarms] stale_after_s (a day) back would be marked
# stale by the hub's alert watch at any moment, changing what a forged write must not change.
T0 = time.time() - 3600
MISSING = 987_654


def send(hub: HubProcess, who: str, gateway: str, key: str, alert_id: int) -> None:
    alert = WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="medium",
        threshold_value=80.0,
        value=85.0,
        opened_at=T0,
    )
    readings = [WireReading(s, key, T0 + s, 80.0 + s, "C") for s in range(1, 6)]
    body = encode_batch(Batch(gateway_id=gateway, readings=readings, alerts=[alert]))
    with hub.client(who) as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text


def get(hub: HubProcess, who: str, path: str, **params: Any) -> httpx.Response:
    with hub.client(who) as c:
        return c.get(f"/api/v1{path}", params=params)


def call(hub: HubProcess, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
    with hub.client(who) as c:
        return c.request(method, f"/api/v1{path}", json=body)


def data(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture(scope="module")
def plant(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[tuple[HubProcess, dict[str, Any]]]:
    """A hub with factories north and south, each with a gateway, a sensor with readings, an
    alert and a rule; tokens limited to north (read, operator, admin) and unlimited ones."""
    server = start_hub(tmp_path_factory.mktemp("hub"), database=hub_database)
    try:
        config = server.config
        server.tokens = {
            "gw_n": token(config, "gateway", "add", "gw-n1", "--factory", "north"),
            "gw_s": token(config, "gateway", "add", "gw-s1", "--factory", "south"),
            "read": token(config, "token", "add", "--role", "read"),
            "admin": token(config, "token", "add", "--role", "admin"),
        }
        for role in ("read", "operator", "admin"):
            args = ("token", "add", "--role", role, "--factory", "north")
            server.tokens[f"n_{role}"] = token(config, *args)
        send(server, "gw_n", "gw-n1", "l1/press/temp", 1)
        send(server, "gw_s", "gw-s1", "l1/oven/temp", 1)
        ids: dict[str, Any] = {}
        for side, key in (("n", "l1/press/temp"), ("s", "l1/oven/temp")):
            sensor = data(get(server, "read", "/sensors", key=key))[0]
            ids[f"{side}_sensor"] = sensor["id"]
            ids[f"{side}_machine"] = sensor["machine_id"]
            ids[f"{side}_factory"] = sensor["factory_id"]
            ids[f"{side}_alert"] = data(get(server, "read", "/alerts", sensor_id=sensor["id"]))[0][
                "id"
            ]
            rule = {"condition": "GREATER_THAN", "threshold": 90.0, "severity": "WARNING"}
            made = call(server, "admin", "POST", f"/sensors/{sensor['id']}/rules", rule)
            assert made.status_code == 201, made.text
            ids[f"{side}_rule"] = made.json()["data"]["id"]
        yield server, ids
    finally:
        assert server.stop() == 0


def id_paths(ids: dict[str, Any], side: str) -> list[str]:
    """Every read of one thing by id, for the things of factory ``side``."""
    f, m, s = ids[f"{side}_factory"], ids[f"{side}_machine"], ids[f"{side}_sensor"]
    a, gw = ids[f"{side}_alert"], f"gw-{side}1"
    return [
        f"/gateways/{gw}",
        f"/gateways/{gw}/config",
        f"/factories/{f}",
        f"/factories/{f}/report",
        f"/machines/{m}",
        f"/sensors/{s}",
        f"/sensors/{s}/readings",
        f"/sensors/{s}/series?bucket=60s",
        f"/sensors/{s}/stats",
        f"/sensors/{s}/latest",
        f"/sensors/{s}/alerts",
        f"/sensors/{s}/rules",
        f"/alerts/{a}",
        f"/alerts/{a}/journal",
    ]


def missing_twin(path: str, ids: dict[str, Any]) -> str:
    """``path`` (of south's things) with its id replaced by one that exists nowhere."""
    for name in ("s_factory", "s_machine", "s_sensor", "s_alert"):
        path = re.sub(rf"/{ids[name]}(?=/|\?|$)", f"/{MISSING}", path, count=1)
    return path.replace("gw-s1", "gw-nowhere")


def test_own_factory_reads_answer(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    for path in id_paths(ids, "n"):
        r = get(hub, "n_read", path)
        assert r.status_code == 200, (path, r.text)


def test_other_factory_ids_are_404_as_if_missing(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    swap = {str(ids[n]): str(MISSING) for n in ("s_factory", "s_machine", "s_sensor", "s_alert")}
    for path in id_paths(ids, "s"):
        assert get(hub, "read", path).status_code == 200, path  # it exists
        scoped = get(hub, "n_read", path)
        missing = get(hub, "read", missing_twin(path, ids))
        assert scoped.status_code == missing.status_code == 404, (path, scoped.text)
        error, expected = scoped.json()["error"], missing.json()["error"]
        # The same answer, but for the id it names.
        message = re.sub(r"\d+", lambda d: swap.get(d.group(), d.group()), error["message"])
        message = message.replace("gw-s1", "gw-nowhere")
        assert (error["code"], message, error["details"]) == (
            expected["code"],
            expected["message"],
            expected["details"],
        ), path


def test_lists_leave_other_factories_out(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    north = ids["n_factory"]
    fields = {
        "/gateways": "factory_id",
        "/factories": "id",
        "/machines": "factory_id",
        "/sensors": "factory_id",
        "/alerts": "factory_id",
    }
    for path, field in fields.items():
        everyone = get(hub, "read", path)
        scoped = get(hub, "n_read", path)
        rows = data(scoped)
        assert rows and {row[field] for row in rows} == {north}, path
        assert {row[field] for row in data(everyone)} == {north, ids["s_factory"]}, path
        assert scoped.json()["meta"]["total"] == len(rows), path
    # Asking for the other factory by filter finds nothing, as for one that does not exist.
    for path, param in (("/machines", "factory_id"), ("/sensors", "factory_id")):
        r = get(hub, "n_read", path, **{param: ids["s_factory"]})
        assert (data(r), r.json()["meta"]["total"]) == ([], 0)
    assert data(get(hub, "n_read", "/sensors", key="l1/oven/temp")) == []
    assert data(get(hub, "n_read", "/alerts", sensor_id=ids["s_sensor"])) == []


def test_alarm_report_counts_only_its_factories(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    period = {"from": T0 - 3600, "to": T0 + 3600}
    fleet = data(get(hub, "read", "/alarm-report", **period))
    north = data(get(hub, "read", "/alarm-report", factory_id=ids["n_factory"], **period))
    scoped = data(get(hub, "n_read", "/alarm-report", **period))
    assert (fleet["alarms"], north["alarms"], scoped["alarms"]) == (2, 1, 1)
    assert scoped["top_sources"] == north["top_sources"]
    other = get(hub, "n_read", "/alarm-report", factory_id=ids["s_factory"], **period)
    missing = get(hub, "read", "/alarm-report", factory_id=MISSING, **period)
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["message"] == f"factory {ids['s_factory']} not found"


def test_audit_shows_only_its_factories(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    everyone = data(get(hub, "admin", "/audit", per_page=1000))
    scoped = data(get(hub, "n_admin", "/audit", per_page=1000))
    created = {(r["target"], r["target_id"]) for r in everyone if r["action"] == "rule.create"}
    assert created == {("rule", str(ids["n_rule"])), ("rule", str(ids["s_rule"]))}
    assert [(r["target"], r["target_id"]) for r in scoped if r["action"] == "rule.create"] == [
        ("rule", str(ids["n_rule"]))
    ]
    assert scoped and all(
        (r["target"], r["target_id"]) != ("rule", str(ids["s_rule"])) for r in scoped
    )


def snapshot(hub: HubProcess, ids: dict[str, Any]) -> list[Any]:
    """What an unlimited reader sees of south: none of it may change by a forged write."""
    s, m, f, a = ids["s_sensor"], ids["s_machine"], ids["s_factory"], ids["s_alert"]
    alert = data(get(hub, "read", f"/alerts/{a}"))
    return [
        data(get(hub, "read", f"/sensors/{s}")),
        data(get(hub, "read", f"/machines/{m}")),
        data(get(hub, "read", f"/factories/{f}")),
        data(get(hub, "read", f"/sensors/{s}/rules")),
        data(get(hub, "read", f"/sensors/{s}/stats")),
        {k: v for k, v in alert.items() if k != "journal"},
        alert["journal"],
        get(hub, "admin", "/audit").json()["meta"]["total"],
    ]


def test_forged_writes_on_another_factory_change_nothing(
    plant: tuple[HubProcess, dict[str, Any]],
) -> None:
    hub, ids = plant
    s, m, f, a, rule = (ids[f"s_{n}"] for n in ("sensor", "machine", "factory", "alert", "rule"))
    before = snapshot(hub, ids)
    not_found = [
        ("n_operator", "POST", f"/alerts/{a}/ack", {"comment": "not mine"}),
        ("n_operator", "POST", f"/alerts/{a}/shelve", {"duration_s": 600, "comment": "x"}),
        ("n_operator", "POST", f"/alerts/{a}/unshelve", {"comment": "x"}),
        ("n_admin", "PUT", f"/sensors/{s}/thresholds", {"min": 0, "max": 1}),
        ("n_admin", "PATCH", f"/sensors/{s}", {"name": "renamed"}),
        ("n_admin", "DELETE", f"/sensors/{s}", None),
        ("n_admin", "POST", f"/sensors/{s}/rules", {"condition": "LESS_THAN", "threshold": 1}),
        ("n_admin", "PATCH", f"/rules/{rule}", {"threshold": 1.0}),
        ("n_admin", "DELETE", f"/rules/{rule}", None),
        ("n_admin", "PATCH", f"/machines/{m}", {"status": "OFFLINE"}),
        ("n_admin", "DELETE", f"/machines/{m}", None),
        ("n_admin", "PATCH", f"/factories/{f}", {"location": "elsewhere"}),
        ("n_admin", "DELETE", f"/factories/{f}", None),
    ]
    for who, method, path, body in not_found:
        r = call(hub, who, method, path, body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    # Parents named in a body: the 422 of a parent that does not exist.
    machine = {"factory_id": f, "line": "l9", "name": "m9", "type": "press"}
    sensor = {"machine_id": m, "name": "t9", "unit": "C"}
    bulk = [{"sensor_id": s, "value": 1.0, "timestamp": T0 + 100}]
    for path, body, twin in (
        ("/machines", machine, {**machine, "factory_id": MISSING}),
        ("/sensors", sensor, {**sensor, "machine_id": MISSING}),
        ("/readings/bulk", bulk, [{**bulk[0], "sensor_id": MISSING}]),
    ):
        forged = call(hub, "n_admin", "POST", path, body)
        missing = call(hub, "admin", "POST", path, twin)
        assert forged.status_code == missing.status_code == 422, (path, forged.text, missing.text)
        shown = json.dumps(forged.json()["error"]).replace(str(body_id(body)), str(MISSING))
        assert shown == json.dumps(missing.json()["error"]), path
    made = call(hub, "n_admin", "POST", "/factories", {"name": "east", "location": ""})
    assert made.status_code == 403, made.text
    assert snapshot(hub, ids) == before
    assert "east" not in {row["name"] for row in data(get(hub, "read", "/factories"))}


def body_id(body: Any) -> int:
    item = body[0] if isinstance(body, list) else body
    return int(item.get("factory_id") or item.get("machine_id") or item["sensor_id"])


def test_own_factory_writes_work(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, ids = plant
    a, s = ids["n_alert"], ids["n_sensor"]
    acked = call(hub, "n_operator", "POST", f"/alerts/{a}/ack", {"comment": "mine"})
    assert acked.status_code == 200, acked.text
    renamed = call(hub, "n_admin", "PATCH", f"/sensors/{s}", {"name": "press temperature"})
    assert data(renamed)["name"] == "press temperature"
    machine = {"factory_id": ids["n_factory"], "line": "l2", "name": "m2", "type": "press"}
    assert call(hub, "n_admin", "POST", "/machines", machine).status_code == 201
    bulk = [{"sensor_id": s, "value": 1.0, "timestamp": T0 + 100}]
    assert call(hub, "n_admin", "POST", "/readings/bulk", bulk).status_code == 201


def test_token_scopes_on_the_command_line(plant: tuple[HubProcess, dict[str, Any]]) -> None:
    hub, _ = plant
    unknown = run_cli(hub.config, "token", "add", "--role", "read", "--factory", "nowhere")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "no factory 'nowhere'" in unknown.stderr
    listed = json.loads(token(hub.config, "token", "list", "--json"))
    assert all(row["role"] != "read" or row["factories"] in ([], ["north"]) for row in listed)
    scoped = [row for row in listed if row["factories"] == ["north"]]
    assert sorted(row["role"] for row in scoped) == ["admin", "operator", "read"]
    table = run_cli(hub.config, "token", "list")
    assert table.stdout.splitlines()[0].split() == [
        "ID",
        "NAME",
        "ROLE",
        "GATEWAY",
        "FACTORIES",
        "CREATED",
        "STATE",
    ]
    # A factory a token is limited to is not deleted: the token would then see every factory.
    empty = call(hub, "admin", "POST", "/factories", {"name": "west", "location": ""})
    west = data_created(empty)["id"]
    token(hub.config, "token", "add", "--role", "read", "--factory", "west")
    refused = call(hub, "admin", "DELETE", f"/factories/{west}")
    assert refused.status_code == 409, refused.text
    assert "token" in refused.json()["error"]["message"]


def data_created(r: httpx.Response) -> Any:
    assert r.status_code == 201, r.text
    return r.json()["data"]


def test_no_spelling_of_an_id_gets_past_the_scope(
    plant: tuple[HubProcess, dict[str, Any]],
) -> None:
    hub, ids = plant
    s = ids["s_sensor"]
    for spelled in (f"%20{s}", f"{s}%20", f"0{s}", f"00{s}"):
        path = f"/sensors/{spelled}"
        assert get(hub, "read", path).status_code == 200, path  # the handlers read it as s
        r = get(hub, "n_read", path)
        assert r.status_code == 404, (path, r.text)
    # What is no id at all gets the handlers' 400, scoped or not.
    for bad in ("abc", "-1", "0", "99999999999999999999"):
        scoped, everyone = (
            get(hub, "n_read", f"/sensors/{bad}"),
            get(hub, "read", f"/sensors/{bad}"),
        )
        assert scoped.status_code == everyone.status_code == 400, bad
        assert scoped.json()["error"]["message"] == everyone.json()["error"]["message"]
    # A parent id past any stored one is the handler's to refuse, never a 500.
    huge = {"factory_id": 2**64, "line": "l9", "name": "m9", "type": "press"}
    r = call(hub, "n_admin", "POST", "/machines", huge)
    assert 400 <= r.status_code < 500, r.text

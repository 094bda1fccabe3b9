"""Gateway offline and shelve expiry in storage, on both engines: a silent gateway is ONE alert
(its sensors read as stale, none alerts on its own), opened once however many hub processes
look at the same time, cleared when the gateway syncs again; a shelve runs out by itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from hub.alert_view import alert_view, journal_view
from hub.api.audit import entry_view
from hub.auth import Principal
from hub.notify import event_body
from hub.storage import GatewayReport, Storage, open_storage
from hub.storage.alerts import Actor, AlertFilter
from hub.storage.changelog import SYSTEM, actor_of
from hub.worker import AlertWatch
from shared.timeutil import now
from shared.wire import WireReading
from tests.hub.conftest import engine_of

REPORT = GatewayReport(0, 0, 0, "test")


def silence(storage: Storage, *gateways: int) -> None:
    """Behind storage's back: these gateways last synced ten minutes ago."""
    sql, params = (
        "UPDATE gateways SET last_seen = ? WHERE id = ?",
        [(now() - 600, g) for g in gateways],
    )
    if engine_of(storage) == "sqlite":
        storage.conn.executemany(sql, params)  # type: ignore[attr-defined]
        return
    with psycopg.connect(storage.url) as conn:  # type: ignore[attr-defined]
        conn.cursor().executemany(sql.replace("?", "%s"), params)


def feed(storage: Storage, gateway: int, factory: int, keys: list[str], seq0: int = 1) -> None:
    readings = [WireReading(seq0 + i, k, 1.0 + i, 1.0, None) for i, k in enumerate(keys)]
    storage.store_batch(gateway, factory, readings, REPORT)


@pytest.fixture
def fleet(storage: Storage) -> Iterator[tuple[int, int, int]]:
    """gw-a (3 sensors) and gw-b (1 sensor) in one factory, gw-never never seen."""
    a = storage.add_gateway("gw-a", "plant", "ha")
    b = storage.add_gateway("gw-b", "plant", "hb")
    storage.add_gateway("gw-never", "plant", "hn")
    factory = storage.list_gateways()[0]["factory_id"]
    feed(storage, a, factory, ["a/m1/t", "a/m1/p", "a/m2/t"])
    feed(storage, b, factory, ["b/m1/t"])
    yield a, b, factory


def offline(storage: Storage) -> list[dict[str, Any]]:
    rows, _ = storage.list_alerts(AlertFilter(kind="gateway_offline"), 0, 100)
    return rows


def test_silent_gateway_is_one_alert_and_its_sensors_are_stale(
    storage: Storage, fleet: tuple[int, int, int]
) -> None:
    a, _, factory = fleet
    silence(storage, a)
    watch = AlertWatch(storage, offline_after_s=120, interval_s=3600)
    assert watch.check_once()["opened"] == 1
    assert watch.check_once()["opened"] == 0  # still the same one alert
    [alert] = offline(storage)
    assert alert["gateway_id"] == "gw-a" and alert["sensor_id"] is None
    assert alert["state"] == "active" and alert["severity"] == "warning"
    assert alert_view(alert)["kind"] == "gateway_offline"
    # no alert per sensor: the one alert stands for them all, and they read as stale
    _, total = storage.list_alerts(AlertFilter(), 0, 100)
    assert total == 1
    sensors = {s["key"]: s["id"] for s in storage.list_sensors()}
    assert storage.stale_sensors(sensors.values()) == {
        sensors["a/m1/t"],
        sensors["a/m1/p"],
        sensors["a/m2/t"],
    }
    # the gateway syncs again: the alert clears and its sensors are fresh
    feed(storage, a, factory, ["a/m1/t"], seq0=10)
    [cleared] = offline(storage)
    assert cleared["state"] == "cleared" and cleared["cleared_at"] is not None
    assert storage.stale_sensors(sensors.values()) == set()
    actions = [(e["action"], e["role"]) for e in storage.alert_journal(int(cleared["id"]))]
    assert actions == [("opened", "system"), ("cleared", "gateway")]
    events = [e["event"] for e in storage.alert_events_after(0, 100)]
    assert events == ["gateway.offline", "gateway.online"]
    # silent again later: a new alert, the old one stays cleared
    silence(storage, a)
    assert watch.check_once()["opened"] == 1
    assert [r["state"] for r in offline(storage)] == ["active", "cleared"]


def test_never_seen_and_revoked_gateways_are_not_offline(
    storage: Storage, fleet: tuple[int, int, int]
) -> None:
    _, b, _ = fleet
    silence(storage, b)
    assert storage.evaluate_gateways(120)["opened"] == 1
    assert storage.revoke_gateway("gw-b")
    assert storage.evaluate_gateways(120) == {"opened": 0, "cleared": 1}
    assert all(r["gateway_id"] != "gw-never" for r in offline(storage))


def test_several_hub_processes_open_it_once(
    storage: Storage, database_url: str, fleet: tuple[int, int, int]
) -> None:
    a, b, _ = fleet
    silence(storage, a, b)
    others = [open_storage(database_url) for _ in range(4)]
    start = threading.Barrier(len(others))
    opened: list[int] = []

    def run(s: Storage) -> None:
        start.wait()
        for _ in range(5):
            opened.append(s.evaluate_gateways(120)["opened"])

    threads = [threading.Thread(target=run, args=(s,)) for s in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in others:
        s.close()
    assert sum(opened) == 2  # gw-a and gw-b, each once
    assert sorted(r["gateway_id"] for r in offline(storage)) == ["gw-a", "gw-b"]


def test_shelve_runs_out_by_itself(storage: Storage, fleet: tuple[int, int, int]) -> None:
    a, _, _ = fleet
    silence(storage, a)
    storage.evaluate_gateways(120)
    alert_id = int(offline(storage)[0]["id"])
    op = Actor(7, "operator")
    row = storage.shelve_alert(alert_id, op, now() + 3600, "noisy")
    assert row is not None and alert_view(row)["shelved"] is True
    # a shelve whose time has passed reads as unshelved at once ...
    row = storage.shelve_alert(alert_id, op, now() - 1, "short")
    assert row is not None and alert_view(row)["shelved"] is False
    # ... and the worker journals its expiry, once
    assert storage.expire_shelves() == 1 and storage.expire_shelves() == 0
    journal = [(e["action"], e["token_id"], e["role"]) for e in storage.alert_journal(alert_id)]
    assert journal == [
        ("opened", None, "system"),
        ("shelved", 7, "operator"),
        ("shelved", 7, "operator"),
        ("shelve_expired", None, "system"),
    ]
    assert storage.get_alert(alert_id)["shelved_until"] is None  # type: ignore[index]


def test_one_hub_process_at_a_time_delivers_to_a_webhook(
    storage: Storage, fleet: tuple[int, int, int]
) -> None:
    a, _, _ = fleet
    url = "http://127.0.0.1:9/hook"
    assert storage.webhook_lease(url, "p1", 60) == 0  # a new URL starts at the newest event
    assert storage.webhook_lease(url, "p1", 60) is None  # nothing new: no lease taken
    silence(storage, a)
    storage.evaluate_gateways(120)  # queues gateway.offline
    [event] = storage.alert_events_after(0, 10)
    assert storage.webhook_lease(url, "p1", 60) == 0
    assert storage.webhook_lease(url, "p2", 60) is None  # p1 holds it
    assert not storage.webhooks.webhook_renew(url, "p2", 60)  # only the holder renews
    assert storage.webhooks.webhook_renew(url, "p1", 60)
    assert not storage.webhook_delivered(url, "p2", int(event["id"]))
    assert storage.webhook_delivered(url, "p1", int(event["id"]))
    assert storage.webhook_lease(url, "p1", 60) is None  # delivered: nothing new
    # a lease that ran out (its process died) passes to another process
    feed(storage, a, fleet[2], ["a/m1/t"], seq0=50)  # queues gateway.online
    assert storage.webhook_lease(url, "p1", -1) == int(event["id"])
    assert storage.webhook_lease(url, "p2", 60) == int(event["id"])
    assert not storage.webhooks.webhook_renew(url, "p1", 60)  # p1's renewal: lost
    assert storage.webhook_lease(url, "p2", 60) == int(event["id"])  # p2 still holds it


def test_who_acted_is_kept_as_it_was_then(storage: Storage, fleet: tuple[int, int, int]) -> None:
    """A person (a Principal with a user id, as a console session makes), a named token, the
    hub itself and a gateway, each named in the journal, the audit log and the webhook events
    as they were at the time: removing the person's account later changes none of it."""
    a, _, factory = fleet
    storage.users.add("anna", "anna", role="operator", display="Anna Berg", by=SYSTEM)
    person = Principal(token_id=3, role="operator", user_id=1, name="anna", display="Anna Berg")
    script = Actor(7, "operator", "token", "shift lead")
    silence(storage, a)
    storage.evaluate_gateways(120)
    alert_id = int(offline(storage)[0]["id"])
    storage.acknowledge_alert(alert_id, actor_of(person), "on it")
    storage.shelve_alert(alert_id, script, now() - 1, "ran out already")
    storage.expire_shelves()
    feed(storage, a, factory, ["a/m1/t"], seq0=50)  # clears the offline alert
    with storage._write() as conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM users")

    anna = {"kind": "user", "name": "anna", "display": "Anna Berg", "role": "operator"}
    shift = {"kind": "token", "name": "shift lead", "display": None, "role": "operator"}
    hub = {"kind": "system", "name": None, "display": None, "role": "system"}
    gateway = {"kind": "gateway", "name": "gw-a", "display": None, "role": "gateway"}
    journal = [(e["action"], e["by"]) for e in map(journal_view, storage.alert_journal(alert_id))]
    assert journal == [
        ("opened", {**hub, "token_id": None}),
        # a person's act names no token: their credential is a session, not a token
        ("acknowledged", {**anna, "token_id": None}),
        ("shelved", {**shift, "token_id": 7}),
        ("shelve_expired", {**hub, "token_id": None}),
        ("cleared", {**gateway, "token_id": None}),
    ]
    alert = alert_view(storage.get_alert(alert_id))  # type: ignore[arg-type]
    assert alert["acknowledged_by"] == {**anna, "token_id": None}

    audit, _ = storage.audit_page(0, 10, target="alert")
    assert [(e["action"], e["by"]) for e in map(entry_view, reversed(audit))] == [
        ("alert.ack", {**anna, "token_id": None}),
        ("alert.shelve", {**shift, "token_id": 7}),
    ]
    events = [json.loads(event_body(e)) for e in storage.alert_events_after(0, 100)]
    assert [(e["event"], e["reannounced"], e["by"]) for e in events] == [
        ("gateway.offline", False, {**hub, "token_id": None}),
        ("alert.acknowledged", False, {**anna, "token_id": None}),
        ("gateway.offline", True, {**hub, "token_id": None}),
        ("gateway.online", False, {**gateway, "token_id": None}),
    ]

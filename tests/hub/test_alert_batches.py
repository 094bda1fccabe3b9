"""Alerts in sync batches (issue 23), through a real hub on both engines: a clear is never
refused for a field that only matters for opening, a close stamped before its open clears,
a batch carries at most MAX_ALERTS_PER_BATCH alerts and each id once, and an alert's journal
is paged."""

from __future__ import annotations

import time
from itertools import count
from typing import Any

import httpx
import msgspec

from devtools.stack import wait_for
from hub.api.alarms import JOURNAL_IN_ALERT
from shared.wire import MAX_ALERTS_PER_BATCH, Batch, WireAlert, WireReading, encode_batch
from tests.hub.conftest import HubProcess

# Within the hub's default window (max_future_s = 600, max_past_s = 10 years).
T0 = time.time() - 3600
_ids = count(1)
_seqs = count(1)


def edge_alert(key: str, **kw: Any) -> WireAlert:
    fields: dict[str, Any] = {
        "id": next(_ids),
        "key": key,
        "rule": "threshold",
        "breach_type": "above_maximum",
        "severity": "medium",
        "threshold_value": 80.0,
        "value": 85.0,
        "opened_at": T0,
    }
    fields.update(kw)
    return WireAlert(**fields)


def post(hub: HubProcess, *alerts: WireAlert, key: str | None = None) -> httpx.Response:
    key = key or alerts[0].key
    body = encode_batch(
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(next(_seqs), key, T0, 1.0, None)],
            alerts=list(alerts),
        )
    )
    with hub.client("gw1") as c:
        return c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})


def sent(hub: HubProcess, *alerts: WireAlert) -> None:
    r = post(hub, *alerts)
    assert r.status_code == 200, r.text


def fleet_alert(hub: HubProcess, key: str) -> dict[str, Any]:
    with hub.client("read") as c:
        sensor = c.get("/api/v1/sensors", params={"key": key}).json()["data"][0]
        rows = c.get("/api/v1/alerts", params={"sensor_id": sensor["id"]}).json()["data"]
        assert len(rows) == 1, rows
        r = c.get(f"/api/v1/alerts/{rows[0]['id']}")
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def problems(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 422, r.text
    return r.json()["error"]["details"]  # type: ignore[no-any-return]


# -- clears that used to be refused ---------------------------------------------------------


def test_a_close_stamped_before_its_open_clears_the_alert(hub: HubProcess) -> None:
    """The readings came out of order: the one that cleared the alert is older than the one
    that opened it. The hub answered 422 and the alarm stayed active for good."""
    a = edge_alert("ab/m1/temp", opened_at=T0 + 60)
    sent(hub, a)
    sent(hub, msgspec.structs.replace(a, closed_at=T0 + 30))
    got = fleet_alert(hub, "ab/m1/temp")
    assert got["state"] == "cleared"
    # A clear before the open took no time (reports sum time in alert from these).
    assert got["cleared_at"] == got["opened_at"]
    assert [e["action"] for e in got["journal"]] == ["opened", "cleared"]


def test_a_clear_is_applied_though_its_opening_fields_fail_a_check(hub: HubProcess) -> None:
    a = edge_alert("ab/m2/temp")
    sent(hub, a)
    opened = fleet_alert(hub, "ab/m2/temp")
    # The clear carries an opened_at and reading_seq the hub would refuse for an opening.
    clear = msgspec.structs.replace(a, opened_at=1e15, reading_seq=2**41, closed_at=T0 + 5)
    sent(hub, clear)
    got = fleet_alert(hub, "ab/m2/temp")
    assert got["state"] == "cleared"
    # What the hub had from the opening stays.
    assert got["opened_at"] == opened["opened_at"]
    assert [e["action"] for e in got["journal"]] == ["opened", "cleared"]


def test_a_clear_whose_own_time_fails_is_applied_when_received(hub: HubProcess) -> None:
    a = edge_alert("ab/m3/temp")
    sent(hub, a)
    before = time.time()
    sent(hub, msgspec.structs.replace(a, closed_at=1e15))
    got = fleet_alert(hub, "ab/m3/temp")
    assert got["state"] == "cleared"
    with hub.client("read") as c:
        cleared = c.get("/api/v1/alerts", params={"state": "cleared", "per_page": 1000})
    row = next(x for x in cleared.json()["data"] if x["id"] == got["id"])
    assert row["cleared_at"] is not None
    # The hub's receive time, not the year 31,690.
    assert row["cleared_at"][:4] == time.strftime("%Y", time.gmtime(before))


def test_the_same_clear_of_an_alert_the_hub_does_not_hold_is_still_refused(
    hub: HubProcess,
) -> None:
    # Never opened at the hub: nothing to reconcile, the edge is told why.
    a = edge_alert("ab/m4/temp", opened_at=1e15, closed_at=T0 + 5)
    details = problems(post(hub, a))
    assert {(d["alert_id"], d["field"]) for d in details} == {(a.id, "alerts.opened_at")}
    # The hub's log names each problem too, not only the agent's.
    wait_for(
        "the refusal in the hub's log",
        lambda: f"alert_id={a.id} alerts.opened_at: must be between" in hub.log.read_text(),
        timeout=10,
        every=0.05,
    )
    # A clear of an alert the hub holds, in the same batch as a refused one: the batch is
    # refused naming only the culprit, and goes through once the edge sets it aside.
    held = edge_alert("ab/m4/temp")
    sent(hub, held)
    clear = msgspec.structs.replace(held, opened_at=1e15, closed_at=T0 + 5)
    details = problems(post(hub, clear, a))
    assert {d["alert_id"] for d in details} == {a.id}
    assert fleet_alert(hub, "ab/m4/temp")["state"] == "active"  # nothing half-applied
    sent(hub, clear)
    assert fleet_alert(hub, "ab/m4/temp")["state"] == "cleared"


# -- alerts per batch ----------------------------------------------------------------------


def test_more_alerts_than_a_batch_may_carry_are_refused(hub: HubProcess) -> None:
    base = edge_alert("ab/m5/temp")
    many = [msgspec.structs.replace(base, id=base.id + i) for i in range(MAX_ALERTS_PER_BATCH + 1)]
    for _ in range(MAX_ALERTS_PER_BATCH + 1):
        next(_ids)
    details = problems(post(hub, *many))
    assert details == [{"field": "alerts", "message": f"more than {MAX_ALERTS_PER_BATCH} alerts"}]
    with hub.client("read") as c:
        assert c.get("/api/v1/sensors", params={"key": "ab/m5/temp"}).json()["data"] == []


def test_an_alert_id_twice_in_one_batch_is_refused_naming_it(hub: HubProcess) -> None:
    a, b = edge_alert("ab/m6/temp"), edge_alert("ab/m6/temp")
    details = problems(post(hub, a, b, a, msgspec.structs.replace(b, value=99.0), a))
    named = [(d["alert_id"], d["field"], d["message"]) for d in details]
    assert named == [
        (a.id, "alerts.id", "appears more than once in the batch"),
        (b.id, "alerts.id", "appears more than once in the batch"),
    ]
    with hub.client("read") as c:
        assert c.get("/api/v1/sensors", params={"key": "ab/m6/temp"}).json()["data"] == []


def test_a_rule_id_out_of_range_is_refused_naming_the_alert(hub: HubProcess) -> None:
    bad = [edge_alert("ab/m8/temp", rule="rule", severity="warning", rule_id=r) for r in (0, 2**63)]
    details = problems(post(hub, *bad))
    assert {(d["alert_id"], d["field"]) for d in details} == {(a.id, "alerts.rule_id") for a in bad}
    with hub.client("read") as c:
        assert c.get("/api/v1/sensors", params={"key": "ab/m8/temp"}).json()["data"] == []


# -- the journal, paged --------------------------------------------------------------------


def test_the_journal_is_paged(hub: HubProcess) -> None:
    a = edge_alert("ab/m7/temp")
    sent(hub, a)
    # Severity moving back and forth: one journal entry per batch.
    moves = JOURNAL_IN_ALERT + 20
    for i in range(moves):
        sent(hub, msgspec.structs.replace(a, severity="critical" if i % 2 == 0 else "medium"))
    total = moves + 1
    got = fleet_alert(hub, "ab/m7/temp")
    assert got["journal_total"] == total
    # The alert carries the newest entries, oldest of them first.
    assert len(got["journal"]) == JOURNAL_IN_ALERT
    assert got["journal"][-1]["action"] == "de-escalated"  # the last move (i odd)
    assert got["journal"][0]["action"] == "escalated"  # move 20 (i even), not "opened"

    alert_id = got["id"]
    with hub.client("read") as c:
        r = c.get(f"/api/v1/alerts/{alert_id}/journal", params={"per_page": 50, "page": 3})
        assert r.status_code == 200, r.text
        page = r.json()
        first = c.get(f"/api/v1/alerts/{alert_id}/journal").json()
        missing = c.get("/api/v1/alerts/999999/journal")
        bad = c.get(f"/api/v1/alerts/{alert_id}/journal", params={"per_page": 5000})
    assert page["meta"]["total"] == total and page["meta"]["total_pages"] == 3
    assert (page["meta"]["page"], page["meta"]["per_page"]) == (3, 50)
    assert len(page["data"]) == total - 100
    assert page["links"]["next"] is None
    assert page["links"]["self"] == f"/api/v1/alerts/{alert_id}/journal?page=3&per_page=50"
    assert first["data"][0]["action"] == "opened" and len(first["data"]) == 100
    assert first["links"]["next"] == f"/api/v1/alerts/{alert_id}/journal?page=2&per_page=100"
    # Entries 21..99 are on both: the alert's newest 100 of 121 and the first page.
    assert first["data"][21:] == got["journal"][:79]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert bad.status_code == 400

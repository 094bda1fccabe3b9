"""The alarm lifecycle in storage, on both engines (ISA-18.2 / EEMUA 191): a shelved alert's
transitions are journaled but queue no webhook event, and when the shelve is lifted or runs
out an alert still active is queued once more as opened, marked ``reannounced``; a source
that clears too often is chattering (shelved for it when configured); an alert active too
long is stale."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from hub.alert_view import alert_view
from hub.storage import GatewayReport, Storage
from hub.storage.alarm_marks import AlarmLimits
from hub.storage.alerts import Actor, AlertFilter
from hub.worker import AlertWatch
from shared.timeutil import now
from shared.wire import WireAlert, WireReading
from tests.edge_alerts import RECENT_T0, threshold_alert

REPORT = GatewayReport(0, 0, 0, "test")
KEY = "life/m1/temp"
OPERATOR = Actor(7, "operator")
OPEN = threshold_alert(KEY, RECENT_T0)


@pytest.fixture
def gateway(storage: Storage) -> Iterator[tuple[int, int]]:
    gw = storage.add_gateway("gw-life", "plant", "hl")
    yield gw, storage.list_gateways()[0]["factory_id"]


def send(storage: Storage, gateway: tuple[int, int], seq: int, alert: WireAlert) -> int:
    """One batch with ``alert``; the hub's id of the alert."""
    reading = WireReading(seq, alert.key, alert.opened_at + seq, alert.value, None)
    storage.store_batch(gateway[0], gateway[1], [reading], REPORT, [alert])
    return int(by_edge_id(storage, alert.id)["id"])


def by_edge_id(storage: Storage, edge_id: int) -> dict[str, Any]:
    rows, _ = storage.list_alerts(AlertFilter(), 0, 100)
    [row] = [r for r in rows if r["edge_alert_id"] == edge_id]
    return row


def events(storage: Storage) -> list[tuple[str, bool]]:
    return [
        (e["event"], bool(json.loads(e["payload"]).get("reannounced", False)))
        for e in storage.alert_events_after(0, 1000)
    ]


def test_a_shelved_alert_is_silent_and_announced_again_when_unshelved(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    alert_id = send(storage, gateway, 1, OPEN)
    assert storage.shelve_alert(alert_id, OPERATOR, now() + 3600, "noisy") is not None
    # escalated and acknowledged while shelved: journaled, not announced
    send(storage, gateway, 2, msgspec.structs.replace(OPEN, severity="critical", value=99.0))
    assert storage.acknowledge_alert(alert_id, OPERATOR, "seen") is not None
    assert events(storage) == [("alert.opened", False)]
    assert storage.unshelve_alert(alert_id, OPERATOR, "back") is not None
    assert events(storage) == [("alert.opened", False), ("alert.opened", True)]
    actions = [e["action"] for e in storage.alert_journal(alert_id)]
    assert actions == ["opened", "shelved", "escalated", "acknowledged", "unshelved"]
    # the re-announcement carries the alert as it is now
    payload = json.loads(storage.alert_events_after(1, 1)[0]["payload"])
    assert payload["severity"] == "critical" and payload["acknowledged"]


def test_a_shelve_that_runs_out_announces_an_active_alert_once(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    alert_id = send(storage, gateway, 1, OPEN)
    storage.shelve_alert(alert_id, OPERATOR, now() - 1, "short")
    assert storage.expire_shelves() == 1 and storage.expire_shelves() == 0
    assert events(storage) == [("alert.opened", False), ("alert.opened", True)]


def test_an_alert_cleared_while_shelved_is_not_announced_again(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    alert_id = send(storage, gateway, 1, OPEN)
    storage.shelve_alert(alert_id, OPERATOR, now() + 3600, None)
    send(storage, gateway, 2, msgspec.structs.replace(OPEN, closed_at=OPEN.opened_at + 5))
    assert storage.unshelve_alert(alert_id, OPERATOR, None) is not None
    assert events(storage) == [("alert.opened", False)]
    actions = [e["action"] for e in storage.alert_journal(alert_id)]
    assert actions == ["opened", "shelved", "cleared", "unshelved"]


def flap(storage: Storage, gateway: tuple[int, int], times: int, gap_s: float) -> list[int]:
    """``times`` alerts of one source, each open 1 s and ``gap_s`` apart; their ids."""
    ids = []
    for n in range(times):
        opened = OPEN.opened_at + n * gap_s
        alert = msgspec.structs.replace(OPEN, id=n + 1, opened_at=opened)
        ids.append(send(storage, gateway, 2 * n + 1, alert))
        send(storage, gateway, 2 * n + 2, msgspec.structs.replace(alert, closed_at=opened + 1))
    return ids


def marked(storage: Storage, ids: list[int], mark: str) -> list[bool]:
    return [bool(storage.get_alert(i)[mark]) for i in ids]  # type: ignore[index]


def test_a_source_that_clears_often_is_chattering(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    ids = flap(storage, gateway, 4, gap_s=10)
    # the third clear within 60 s marks its alert, and so the next one
    assert marked(storage, ids, "chattering") == [False, False, True, True]
    assert [e["action"] for e in storage.alert_journal(ids[2])] == [
        "opened",
        "cleared",
        "chattering",
    ]
    assert [e["action"] for e in storage.alert_journal(ids[3])][:2] == ["opened", "chattering"]
    assert storage.get_alert(ids[2])["chattering_at"] is not None  # type: ignore[index]


def test_clears_spread_wider_than_the_window_are_not_chattering(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    ids = flap(storage, gateway, 4, gap_s=40)  # at most 2 clears in any 60 s
    assert marked(storage, ids, "chattering") == [False] * 4


def test_a_chattering_alert_is_shelved_when_configured_and_silent(
    storage: Storage, gateway: tuple[int, int]
) -> None:
    storage.alerts.limits = AlarmLimits(chattering_shelve_s=600)
    ids = flap(storage, gateway, 3, gap_s=5)
    fourth = msgspec.structs.replace(OPEN, id=9, opened_at=OPEN.opened_at + 20)
    alert_id = send(storage, gateway, 9, fourth)
    row = storage.get_alert(alert_id)
    assert row is not None and row["chattering"] and alert_view(row)["shelved"]
    assert [(e["action"], e["role"], e["comment"]) for e in storage.alert_journal(alert_id)] == [
        ("opened", "gateway", None),
        ("chattering", "system", None),
        ("shelved", "system", "chattering"),
    ]
    # the three that opened before it was chattering were announced, this one not
    opened = [e["alert_id"] for e in storage.alert_events_after(0, 100) if "opened" in e["event"]]
    assert opened == ids


def test_an_alert_active_too_long_is_stale(storage: Storage, gateway: tuple[int, int]) -> None:
    storage.alerts.limits = AlarmLimits(stale_after_s=3600)
    old = send(storage, gateway, 1, msgspec.structs.replace(OPEN, opened_at=now() - 7200))
    fresh = msgspec.structs.replace(OPEN, id=2, key="life/m2/t", opened_at=now() - 60)
    fresh_id = send(storage, gateway, 2, fresh)
    assert AlertWatch(storage, offline_after_s=120, interval_s=3600).check_once()["stale"] == 1
    assert storage.alerts.mark_stale() == 0  # once
    assert marked(storage, [old, fresh_id], "stale") == [True, False]
    assert alert_view(storage.get_alert(old))["stale"] is True  # type: ignore[arg-type]
    assert [e["action"] for e in storage.alert_journal(old)] == ["opened", "stale"]

"""The alarm lifecycle in storage, on both engines (ISA-18.2): a shelved alert's transitions
are journaled but queue no webhook event, and when the shelve is lifted or runs out an alert
still active is queued once more as opened, marked ``reannounced``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from hub.storage import GatewayReport, Storage
from hub.storage.alerts import Actor, AlertFilter
from shared.timeutil import now
from shared.wire import WireAlert, WireReading

REPORT = GatewayReport(0, 0, 0, "test")
KEY = "life/m1/temp"
OPERATOR = Actor(7, "operator")
OPEN = WireAlert(
    id=1,
    key=KEY,
    rule="threshold",
    breach_type="above_maximum",
    severity="medium",
    threshold_value=80.0,
    value=90.0,
    opened_at=1_700_000_000.0,
)


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
    send(storage, gateway, 2, msgspec.structs.replace(OPEN, severity="high", value=99.0))
    assert storage.acknowledge_alert(alert_id, OPERATOR, "seen") is not None
    assert events(storage) == [("alert.opened", False)]
    assert storage.unshelve_alert(alert_id, OPERATOR, "back") is not None
    assert events(storage) == [("alert.opened", False), ("alert.opened", True)]
    actions = [e["action"] for e in storage.alert_journal(alert_id)]
    assert actions == ["opened", "shelved", "escalated", "acknowledged", "unshelved"]
    # the re-announcement carries the alert as it is now
    payload = json.loads(storage.alert_events_after(1, 1)[0]["payload"])
    assert payload["severity"] == "high" and payload["acknowledged"]


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

"""Alerts the hub refuses (issue 23): never given up silently. A 422 naming an alert moves
that version to the dead letters with the hub's reason (counted by ``edge-agent status``),
the agent's log names each problem, and a close is never stamped before its open."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from structlog.testing import capture_logs

import threshold_checker as tc
from agent.buffer import Buffer
from agent.config import AgentConfig
from agent.rules import wire_alert
from agent.sync import Outcome, Syncer
from shared.wire import MAX_ALERTS_PER_BATCH, decode_batch

from .conftest import make_config

KEY = "l1/m1/temp"
T0 = time.time() - 60


def event(kind: str, ts: float, opened_at: float, key: str = KEY) -> tc.AlertEvent:
    return tc.AlertEvent(
        kind=kind,  # type: ignore[arg-type]
        key=key,
        breach_type="above_maximum",
        severity="high",
        threshold_value=85.0,
        value=97.0,
        ts=ts,
        opened_at=opened_at,
        opened_seq=1,
        rule="threshold",
    )


def refuse(alert_id: int, field: str, message: str) -> httpx.Response:
    detail = {"alert_index": 0, "alert_id": alert_id, "field": field, "message": message}
    return httpx.Response(
        422,
        json={
            "error": {
                "code": "validation_error",
                "message": "1 problem(s) in batch",
                "details": [detail],
            }
        },
    )


async def test_a_refused_alert_goes_to_the_dead_letters_with_the_hubs_reason(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    buffer = Buffer(config.buffer.path)
    bad, good = buffer.store_alert_events(
        [event("open", T0, T0), event("open", T0, T0, key="l1/m1/pressure")]
    )
    posts: list[list[int]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, "gzip")
        posts.append([a.id for a in batch.alerts])
        if bad.id in posts[-1]:
            return refuse(bad.id, "alerts.opened_at", "is 9999 s before the hub's clock")
        return httpx.Response(200, json={"data": {"accepted": 0, "duplicates": 0}, "meta": {}})

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub), wire_alert=wire_alert)
    with capture_logs() as logs:
        async with syncer._client() as http:
            assert (await syncer.sync_once(http)).outcome is Outcome.SENT
            assert (await syncer.sync_once(http)).outcome is Outcome.SENT
    # The refused one went once; the other one again at once, and was acked.
    assert posts == [[bad.id, good.id], [good.id]]
    assert buffer.alerts_pending() == 0
    # Counted where a person looks (edge-agent status), with what the hub said.
    assert buffer.dead_letters_total == 1
    assert buffer.stats().dead_letters == 1
    topic, payload, reason = buffer._db.execute(
        "SELECT topic, payload, reason FROM dead_letters"
    ).fetchone()
    assert topic == KEY
    assert reason == "rejected by hub: alerts.opened_at: is 9999 s before the hub's clock"
    assert json.loads(payload)["alert"]["id"] == bad.id
    # The log names the alert and its problem, not just "2 problem(s) in batch".
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1, logs
    assert errors[0]["ids"] == str(bad.id)
    assert "alerts.opened_at: is 9999 s before the hub's clock" in errors[0]["problems"]


async def test_a_close_of_a_refused_open_is_sent_and_refused_on_its_own(tmp_path: Path) -> None:
    """The open went to the dead letters; its close is a new version, so it still goes out
    (the hub may hold the alert after all, and then takes the clear)."""
    config = make_config(tmp_path)
    buffer = Buffer(config.buffer.path)
    (opened,) = buffer.store_alert_events([event("open", T0, T0)])
    got: list[tuple[int, float | None]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, "gzip")
        got.extend((a.id, a.closed_at) for a in batch.alerts)
        if len(got) == 1:
            return refuse(opened.id, "alerts.reading_seq", "must be in 1..1099511627775")
        return httpx.Response(200, json={"data": {"accepted": 0, "duplicates": 0}, "meta": {}})

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub), wire_alert=wire_alert)
    async with syncer._client() as http:
        await syncer.sync_once(http)
        buffer.store_alert_events([event("close", T0 + 5, T0)])
        await syncer.sync_once(http)
    assert got == [(opened.id, None), (opened.id, T0 + 5)]
    assert buffer.alerts_pending() == 0 and buffer.dead_letters_total == 1


def test_a_close_stamped_before_its_open_is_kept_at_the_open_time(tmp_path: Path) -> None:
    """The reading that cleared the alert is older than the one that opened it (readings out
    of order): the hub used to refuse such a close for good."""
    buffer = Buffer(make_config(tmp_path).buffer.path)
    buffer.store_alert_events([event("open", T0 + 60, T0 + 60)])
    (closed,) = buffer.store_alert_events([event("close", T0 + 30, T0 + 60)])
    assert closed.closed_at == closed.opened_at == T0 + 60
    assert wire_alert(closed).closed_at == T0 + 60
    # An open that closes a stray one of the same sensor and rule stamps it alike.
    buffer.store_alert_events([event("open", T0 + 100, T0 + 100)])
    buffer.store_alert_events([event("open", T0 + 90, T0 + 90)])
    rows = buffer._db.execute("SELECT opened_at, closed_at FROM alerts ORDER BY id").fetchall()
    assert rows[-2] == (T0 + 100, T0 + 100)
    # A close whose open row is gone is written whole, also no earlier than its open.
    buffer.store_alert_events([event("close", T0 + 80, T0 + 90)])
    (reopened,) = buffer.store_alert_events([event("close", T0 + 1, T0 + 200, key="l9/m/x")])
    assert reopened.closed_at == T0 + 200


def test_alerts_per_batch_cannot_be_set_past_what_a_hub_takes(tmp_path: Path) -> None:
    base: dict[str, Any] = make_config(tmp_path).model_dump(mode="json")
    base["alerts"]["batch_max"] = MAX_ALERTS_PER_BATCH
    assert AgentConfig.model_validate(base).alerts.batch_max == MAX_ALERTS_PER_BATCH
    base["alerts"]["batch_max"] = MAX_ALERTS_PER_BATCH + 1
    with pytest.raises(pydantic.ValidationError, match="batch_max"):
        AgentConfig.model_validate(base)

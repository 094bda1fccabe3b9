"""Stale/fresh marks: kept in the buffer across restarts until the hub has them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from agent.buffer import Buffer, Reading
from agent.sparkplug.marks import MarkStore
from agent.sparkplug.session import Mark
from agent.sync import Syncer
from shared.wire import Batch, WireMark, decode_batch, encode_batch

from .conftest import make_config


def test_marks_survive_a_restart_until_acked(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    store = MarkStore(buffer)
    store.add([Mark(("g/n/a", "g/n/b"), True, 10.0)])
    buffer.close()

    buffer = Buffer(path)
    store = MarkStore(buffer)
    sent = store.pending()
    assert sorted(sent, key=lambda m: m.key) == [
        WireMark("g/n/a", True, 10.0),
        WireMark("g/n/b", True, 10.0),
    ]
    # A birth after the batch was built: the newer mark for g/n/a must outlive the ack.
    store.add([Mark(("g/n/a",), False, 11.0)])
    store.acked(sent)
    assert store.pending() == [WireMark("g/n/a", False, 11.0)]
    buffer.close()
    assert MarkStore(Buffer(path)).pending() == [WireMark("g/n/a", False, 11.0)]


def test_an_older_mark_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    store = MarkStore(Buffer(tmp_path / "b.db"))
    store.add([Mark(("g/n/a",), False, 20.0)])
    store.add([Mark(("g/n/a",), True, 19.0)])
    assert store.pending() == [WireMark("g/n/a", False, 20.0)]


def test_marks_travel_in_the_sync_batch() -> None:
    batch = Batch(gateway_id="gw", readings=[], marks=[WireMark("g/n/a", True, 5.5)])
    assert decode_batch(encode_batch(batch)).marks == [WireMark("g/n/a", True, 5.5)]
    # A batch from an agent without marks decodes with none.
    assert decode_batch(b'{"gateway_id": "gw", "readings": []}').marks == []


async def test_the_sync_sends_marks_alone_and_forgets_them_after_a_2xx(tmp_path: Path) -> None:
    config = make_config(tmp_path, 1)
    buffer = Buffer(config.buffer.path)
    store = MarkStore(buffer)
    store.add([Mark(("g/n/a",), True, 10.0)])
    answers = [503, 200]
    seen: list[list[WireMark]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, request.headers.get("content-encoding"))
        seen.append(batch.marks)
        status = answers.pop(0)
        if status != 200:
            return httpx.Response(status, json={"error": {"code": "busy", "message": "busy"}})
        return httpx.Response(200, json={"data": {"accepted": 0, "duplicates": 0}, "meta": {}})

    syncer = Syncer(
        config,
        buffer,
        transport=httpx.MockTransport(hub),
        marks=store,
    )
    async with syncer._client() as http:
        await syncer.sync_once(http)  # no readings: the batch carries the mark alone
    assert seen == [[WireMark("g/n/a", True, 10.0)]] * 2  # retried after the 503, then taken
    assert store.pending() == []
    assert MarkStore(buffer).pending() == []


async def test_a_mark_the_hub_rejects_is_given_up_and_holds_nothing_back(tmp_path: Path) -> None:
    config = make_config(tmp_path, 1)
    buffer = Buffer(config.buffer.path)
    now = time.time()
    buffer.append([Reading("l1/m1/s1", now, 1.0, None, now)])
    store = MarkStore(buffer)
    store.add([Mark(("g/n/a",), True, 10.0), Mark(("g/n/b",), True, 11.0)])
    bodies: list[Batch] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, request.headers.get("content-encoding"))
        bodies.append(batch)
        bad = [i for i, m in enumerate(batch.marks) if m.key == "g/n/a"]
        if bad:
            details = [{"mark_index": i, "field": "marks.at", "message": "too old"} for i in bad]
            return httpx.Response(
                422,
                json={"error": {"code": "validation_error", "message": "bad", "details": details}},
            )
        return httpx.Response(200, json={"data": {"accepted": 1, "duplicates": 0}, "meta": {}})

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub), marks=store)
    async with syncer._client() as http:
        await syncer.sync_once(http)  # 422 naming g/n/a's mark: given up
        await syncer.sync_once(http)  # the reading and g/n/b's mark go through
    assert [m.key for m in bodies[-1].marks] == ["g/n/b"]
    assert buffer.backlog == 0 and store.pending() == []

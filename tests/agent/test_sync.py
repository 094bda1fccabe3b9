"""Sync against a fake hub (httpx.MockTransport): ack only after 2xx, retry what heals."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from agent.buffer import Buffer, Reading
from agent.sync import Outcome, Syncer
from shared.wire import decode_batch

from .conftest import make_config

Handler = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    batch = decode_batch(request.content, request.headers.get("content-encoding"))
    return httpx.Response(
        200, json={"data": {"accepted": len(batch.readings), "duplicates": 0}, "meta": {}}
    )


def fill(buffer: Buffer, n: int) -> None:
    now = time.time()
    buffer.append([Reading(f"l1/m1/s{i % 3}", now, float(i), None, now) for i in range(n)])


async def run_once(
    tmp_path: Path, handler: Handler, n: int = 10, **cfg: object
) -> tuple[Outcome, Buffer, Syncer]:
    config = make_config(tmp_path, 1, **cfg)
    buffer = Buffer(config.buffer.path)
    fill(buffer, n)
    syncer = Syncer(config, buffer, transport=httpx.MockTransport(handler))
    async with syncer._client() as http:
        outcome = (await syncer.sync_once(http)).outcome
    return outcome, buffer, syncer


async def test_2xx_acks_and_records(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(request)

    outcome, buffer, _ = await run_once(tmp_path, hub)
    assert outcome is Outcome.SENT
    assert buffer.backlog == 0
    req = seen[0]
    assert str(req.url) == "http://hub.test/api/v1/ingest"
    assert req.headers["authorization"] == "Bearer tok"
    assert req.headers["content-encoding"] == "gzip"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(gzip.decompress(req.content))
    assert body["gateway_id"] == "gw-test" and body["backlog"] == 0
    assert [r[0] for r in body["readings"]] == list(range(1, 11))
    last = buffer.stats().last_sync
    assert last is not None and last.result == "ok" and last.accepted == 10


async def test_batches_are_limited_and_report_remaining_backlog(tmp_path: Path) -> None:
    sizes: list[tuple[int, int]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, "gzip")
        sizes.append((len(batch.readings), batch.backlog))
        return ok(request)

    outcome, buffer, _ = await run_once(tmp_path, hub, n=25, hub__batch_max_readings=10)
    assert outcome is Outcome.SENT
    assert sizes == [(10, 15)] and buffer.backlog == 15


@pytest.mark.parametrize("failure", [503, 500, 429, "connect", "timeout"])
async def test_transient_failures_retry_then_succeed(tmp_path: Path, failure: object) -> None:
    calls = 0

    def hub(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            if failure == "connect":
                raise httpx.ConnectError("refused", request=request)
            if failure == "timeout":
                raise httpx.ReadTimeout("slow", request=request)
            assert isinstance(failure, int)
            return httpx.Response(failure, json={"error": {"code": "x", "message": "down"}})
        return ok(request)

    outcome, buffer, _ = await run_once(tmp_path, hub)
    # Each timeout halved the batch (test_timeouts_halve_the_batch...): 10 -> 5 -> 2 sent.
    left = 8 if failure == "timeout" else 0
    assert outcome is Outcome.SENT and calls == 3 and buffer.backlog == left


async def test_failures_keep_data_until_2xx(tmp_path: Path) -> None:
    calls = 0
    retried = asyncio.Event()

    def hub(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls >= 3:
            retried.set()
        return httpx.Response(503, json={"error": {"code": "unavailable", "message": "db"}})

    config = make_config(tmp_path)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 5)
    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    stopping = asyncio.Event()
    task = asyncio.create_task(syncer.run(stopping))
    await asyncio.wait_for(retried.wait(), 10)  # three refusals: the batch went and came back
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert buffer.backlog == 5
    last = buffer.stats().last_sync
    assert last is not None and last.result.startswith("error: HTTP 503")


async def test_422_naming_seqs_moves_exactly_those_to_dead_letters(tmp_path: Path) -> None:
    posts: list[list[int]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batch = decode_batch(request.content, "gzip")
        seqs = [r.seq for r in batch.readings]
        posts.append(seqs)
        bad = [s for s in seqs if s in (3, 7)]
        if bad:
            details = [
                {"index": seqs.index(s), "seq": s, "field": "value", "message": "out of range"}
                for s in bad
            ]
            return httpx.Response(
                422,
                json={
                    "error": {
                        "code": "validation_error",
                        "message": "2 problems",
                        "details": details,
                    }
                },
            )
        return ok(request)

    config = make_config(tmp_path)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 10)
    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    async with syncer._client() as http:
        assert (await syncer.sync_once(http)).outcome is Outcome.SENT
        assert buffer.backlog == 8 and buffer.dead_letters_total == 2
        assert (await syncer.sync_once(http)).outcome is Outcome.SENT
    assert posts[1] == [1, 2, 4, 5, 6, 8, 9, 10]
    assert buffer.backlog == 0
    reasons = [r[0] for r in buffer._db.execute("SELECT reason FROM dead_letters")]
    assert reasons == ["rejected by hub: value: out of range"] * 2


@pytest.mark.parametrize("status", [401, 403, 400, 422])
async def test_refusals_keep_data_and_hold(tmp_path: Path, status: int) -> None:
    calls = 0

    def hub(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": {"code": "nope", "message": "bad token"}})

    outcome, buffer, _ = await run_once(tmp_path, hub)
    assert outcome is Outcome.HELD and calls == 1  # no blind retry
    assert buffer.backlog == 10 and buffer.dead_letters_total == 0
    last = buffer.stats().last_sync
    assert last is not None and last.result == f"error: HTTP {status}: nope: bad token"


async def test_413_halves_the_batch(tmp_path: Path) -> None:
    sizes: list[int] = []

    def hub(request: httpx.Request) -> httpx.Response:
        n = len(decode_batch(request.content, "gzip").readings)
        sizes.append(n)
        return httpx.Response(413) if n > 3 else ok(request)

    config = make_config(tmp_path)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 10)
    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    stopping = asyncio.Event()
    task = asyncio.create_task(syncer.run(stopping))
    for _ in range(100):
        if buffer.backlog == 0:
            break
        await asyncio.sleep(0.02)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert buffer.backlog == 0
    # Halved at each 413, never grown past the size the hub took. (A batch read ahead may go
    # out beside a refused one, at its size: hence the distinct sizes in order.)
    assert list(dict.fromkeys(sizes))[:3] == [10, 5, 2]
    assert max(sizes[sizes.index(2) :]) == 2


async def test_new_data_wakes_an_idle_sync(tmp_path: Path) -> None:
    config = make_config(tmp_path, hub__interval_s=30.0)
    buffer = Buffer(config.buffer.path)
    wake = asyncio.Event()
    syncer = Syncer(config, buffer, wake=wake, transport=httpx.MockTransport(ok))
    stopping = asyncio.Event()
    task = asyncio.create_task(syncer.run(stopping))
    await asyncio.sleep(0.05)
    fill(buffer, 3)
    wake.set()
    for _ in range(100):
        if buffer.backlog == 0:
            break
        await asyncio.sleep(0.01)
    assert buffer.backlog == 0
    stopping.set()
    await asyncio.wait_for(task, 2)  # stop also ends the 30 s idle wait


def _seqs(request: httpx.Request) -> list[int]:
    return [r.seq for r in decode_batch(request.content, "gzip").readings]


async def _drain(syncer: Syncer, buffer: Buffer, rounds: int = 500) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(syncer.run(stopping))
    for _ in range(rounds):
        if buffer.backlog == 0 and not syncer.in_flight:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(task, 5)


def test_live_first_batches_split_and_cover_every_row_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, hub__batch_max_readings=20)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 100)
    syncer = Syncer(config, buffer)
    syncer.floor = buffer.max_seq()
    fill(buffer, 5)  # arrived after the backlog formed
    first = syncer._prepare()
    assert first is not None
    assert [r.seq for r in first.rows] == [101, 102, 103, 104, 105, *range(1, 16)]
    # The read-ahead chain (as while a batch is on the wire) hands out each row exactly once,
    # live rows capped at live_share while old rows wait.
    fill(buffer, 30)
    sent = [r.seq for r in first.rows]
    prepared = first
    for _ in range(20):
        nxt = syncer._prepare(prepared.after_old, prepared.after_new, ahead=True)
        if nxt is None:
            break
        new = [r.seq for r in nxt.rows if r.seq > syncer.floor]
        assert len(new) <= 10 or all(r.seq > syncer.floor for r in nxt.rows)
        sent += [r.seq for r in nxt.rows]
        prepared = nxt
    assert sorted(sent) == list(range(1, 136))
    assert len(sent) == len(set(sent))
    buffer.close()


async def test_live_rows_overtake_the_backlog_and_all_arrive_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, hub__batch_max_readings=50)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 2000)
    batches: list[list[int]] = []
    live: list[int] = []

    def hub(request: httpx.Request) -> httpx.Response:
        batches.append(_seqs(request))
        if len(batches) == 5:
            # Committed while batch 5 is on the wire (batch 6 is already read ahead).
            fill(buffer, 3)
            live.extend(range(2001, 2004))
        return ok(request)

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    await _drain(syncer, buffer)
    assert buffer.backlog == 0
    arrived = next(i for i, b in enumerate(batches) if set(live) <= set(b))
    # Batch 6 may be on the wire beside batch 5 and batch 7 read ahead: the live rows come in
    # the first batch claimed after them.
    assert arrived <= 7, f"live rows came in batch {arrived} of {len(batches)}"
    assert len(batches) > 30  # ... long before the 2000-row backlog was through
    every = [s for b in batches for s in b]
    assert sorted(every) == list(range(1, 2004)) and len(every) == len(set(every))


async def test_backoff_is_capped_jittered_and_moves_the_floor(tmp_path: Path) -> None:
    config = make_config(tmp_path, hub__backoff_min_s=0.2, hub__backoff_max_s=1.0)
    buffer = Buffer(config.buffer.path)
    fill(buffer, 10)
    calls = 0

    def hub(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 40:
            fill(buffer, 1)  # readings keep coming during the outage
            return httpx.Response(503, json={"error": {"code": "down", "message": "down"}})
        return ok(request)

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    syncer._sleep = no_sleep  # type: ignore[method-assign]
    async with syncer._client() as http:
        result = await syncer.sync_once(http)
    assert result.outcome is Outcome.SENT and result.acked
    assert len(waits) == 40
    # Never longer than the cap (first data within ~1 s of the hub's return), never shorter
    # than backoff_min_s (at most 5 attempts/s from one gateway), and not in lockstep.
    assert max(waits) <= 1.0 and min(waits) >= 0.2
    assert len({round(w, 6) for w in waits[10:]}) > 20
    # Everything stored while the hub was down is backlog; the floor is the newest of it.
    assert result.floor_next == 50


async def test_timeouts_halve_the_batch_and_quick_answers_grow_it_back(tmp_path: Path) -> None:
    """A link too slow for a full batch within timeout_s: the retry claims half as many
    readings; answers well within timeout_s double the size again, up to the maximum."""
    config = make_config(
        tmp_path, hub__batch_max_readings=32, hub__backoff_min_s=0.01, hub__backoff_max_s=0.02
    )
    buffer = Buffer(config.buffer.path)
    fill(buffer, 300)
    sizes: list[int] = []
    stored: list[int] = []

    def hub(request: httpx.Request) -> httpx.Response:
        seqs = _seqs(request)
        sizes.append(len(seqs))
        if len(sizes) <= 2:
            # The hub may even have stored it: only the answer is lost.
            stored.extend(seqs)
            raise httpx.ReadTimeout("no answer within timeout_s", request=request)
        stored.extend(seqs)
        return ok(request)

    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))
    await _drain(syncer, buffer)
    # Batches read ahead (and sent beside it once the link is quick again) before the 4th
    # answer doubled the size are still 16.
    assert sizes[:4] == [32, 16, 8, 16] and 32 in sizes[4:8]
    assert buffer.backlog == 0 and set(stored) == set(range(1, 301))


async def test_a_connect_timeout_does_not_shrink_the_batch(tmp_path: Path) -> None:
    calls = 0

    def hub(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectTimeout("no route", request=request)
        return ok(request)

    outcome, buffer, syncer = await run_once(tmp_path, hub, n=20, hub__batch_max_readings=20)
    assert outcome is Outcome.SENT and buffer.backlog == 0 and syncer.limit == 20


def test_buffer_rows_encode_exactly_as_wire_readings() -> None:
    """The syncer puts buffer rows into the batch as they are (agent.sync._batch): that is only
    right while a Row is WireReading's fields in WireReading's order, and encodes the same."""
    from agent.buffer import Row
    from shared.wire import Batch, WireReading, encode_batch

    assert Row._fields == WireReading.__struct_fields__
    rows = [
        Row(7, "l1/m1/t", 1732270000.123456, 0.1 + 0.2, "C"),
        Row(8, "l1/m1/p", 1.5, -0.0, None),
    ]
    as_rows = Batch(gateway_id="gw", readings=rows, sent_at=1.0)  # type: ignore[arg-type]
    as_wire = Batch(gateway_id="gw", readings=[WireReading(*r) for r in rows], sent_at=1.0)
    assert encode_batch(as_rows, compress=False) == encode_batch(as_wire, compress=False)
    assert decode_batch(encode_batch(as_rows)).readings == [WireReading(*r) for r in rows]


class _PairedHub:
    """A hub that holds request ``held`` until request ``held + 1`` is on the wire too (a drain
    keeps two batches in flight), and answers ``status[i]`` to request i (200: stored)."""

    def __init__(self, held: int, status: dict[int, int] | None = None) -> None:
        self.held = held
        self.status = status or {}
        self.requests: list[list[int]] = []
        self.stored: list[int] = []
        self.on_wire = self.most_on_wire = 0
        self.paired = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        seqs = _seqs(request)
        self.requests.append(seqs)
        number = len(self.requests)
        self.on_wire += 1
        self.most_on_wire = max(self.most_on_wire, self.on_wire)
        try:
            if number == self.held + 1:
                self.paired.set()
            if number == self.held:
                # A hang detector only: the pair comes at once when the syncer chases.
                await asyncio.wait_for(self.paired.wait(), 10)
            code = self.status.get(number, 200)
            if code != 200:
                return httpx.Response(code, json={"error": {"code": "down", "message": "down"}})
            self.stored.extend(seqs)
            return ok(request)
        finally:
            self.on_wire -= 1


async def _drain_paired(tmp_path: Path, hub: _PairedHub, n: int = 400) -> Buffer:
    config = make_config(
        tmp_path, hub__batch_max_readings=50, hub__backoff_min_s=0.01, hub__backoff_max_s=0.02
    )
    buffer = Buffer(config.buffer.path)
    fill(buffer, n)
    syncer = Syncer(config, buffer, transport=httpx.MockTransport(hub))  # type: ignore[arg-type]
    await _drain(syncer, buffer)
    return buffer


async def test_a_drain_keeps_two_batches_on_the_wire(tmp_path: Path) -> None:
    # Request 1 goes alone (the link is not known to be quick yet); request 2 is held until
    # the batch after it is on the wire as well.
    hub = _PairedHub(held=2)
    buffer = await _drain_paired(tmp_path, hub)
    assert hub.paired.is_set() and hub.most_on_wire == 2
    assert buffer.backlog == 0 and buffer.dropped == 0
    assert sorted(hub.stored) == list(range(1, 401))  # each reading stored exactly once


async def test_a_refused_second_batch_goes_again_and_nothing_is_lost(tmp_path: Path) -> None:
    # The batch sent beside request 2 gets a 503: its rows stay and go in later batches.
    hub = _PairedHub(held=2, status={3: 503})
    buffer = await _drain_paired(tmp_path, hub)
    assert hub.paired.is_set()
    assert buffer.backlog == 0 and buffer.dropped == 0
    assert sorted(hub.stored) == list(range(1, 401))
    assert set(hub.requests[2]) <= set(s for r in hub.requests[3:] for s in r)


async def test_a_failed_first_batch_is_retried_while_the_second_stays_acked(
    tmp_path: Path,
) -> None:
    # Request 2 fails (503) after the batch beside it (request 3) was stored: request 2's rows
    # go again, request 3's never do.
    hub = _PairedHub(held=2, status={2: 503})
    buffer = await _drain_paired(tmp_path, hub)
    assert hub.paired.is_set()
    assert buffer.backlog == 0 and buffer.dropped == 0
    assert sorted(hub.stored) == list(range(1, 401))
    later = [s for r in hub.requests[3:] for s in r]
    assert set(hub.requests[1]) <= set(later) and not set(hub.requests[2]) & set(later)

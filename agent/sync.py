"""Sync: batches from the buffer to the hub, deleted only after the hub said 2xx.

Retries (exponential backoff, full jitter) cover what may heal by itself: connection errors,
timeouts, 5xx, 429. A request the hub refused on its merits is not retried as is:

* 422 naming seqs: those readings can never be stored, so they move to dead_letters and the
  rest goes again at once. (Without this one bad row would block the whole outbox forever.)
  Alerts named by ``alert_id`` go the same way, with the hub's reason for each.
* 413: the batch is too big for this hub: halve the batch and go again (and never grow past
  that size again in this run).
* A timeout once the request went out (write or read timeout): maybe the link is too slow for
  a full batch within ``timeout_s``. The retry claims a batch half the size; after a success
  that took under a quarter of ``timeout_s`` the size doubles again, up to the configured
  maximum (a stalled link that recovers costs a few small batches, a slow one settles on a
  size it can carry).
* 401/403/other 4xx: a deployment problem (token, gateway id). Keep every reading, say so
  loudly, and try again after backoff_max_s - the operator may fix the hub side.

Resending after a lost answer is safe because the hub stores each (gateway_id, seq) once.

Live first. After an outage the buffer holds a backlog that takes minutes to drain; readings
that arrive meanwhile must not queue behind it. The syncer keeps a *floor*: the highest seq
stored when the backlog was formed - at start (whatever is in the file waited through an
outage) and at every failed attempt (so when the hub answers again, the floor is the newest
seq of at most one retry interval ago). Each batch carries the rows above the floor first
(oldest of them first, at most ``hub.live_share`` of the batch while older rows wait, all of
it when none do) and fills the rest with the oldest rows below it, so the buffer drains from
both ends. A batch is acked by exactly the seqs it carried, and the read-ahead of the next
batch goes on from two cursors (the last old and the last new seq sent), so nothing is sent
twice in a row and nothing is skipped: rows are only ever added above every cursor, since seqs
are never reused. When the floor moves, a batch read ahead under the old floor is dropped.
The hub stores readings by (gateway_id, seq) whatever their order within or across batches.

Two in flight. In a drain the next batch is claimed and encoded (read ahead) while the
current one is on the wire, and once it is ready it goes out too, so the hub stores one batch
while the other travels and is decoded. Only while the link is healthy (the last batch was
answered within a quarter of ``timeout_s`` and no timeout has shrunk the batches), and only
one attempt: a second batch that is not answered 2xx is simply not acked, its rows stay and go
again by the one-at-a-time path, which meets whatever refused it and deals with it as above.
A retry of the current batch waits until the second is answered (and acked), so a batch
claimed afresh never carries rows an answer is still due for.

Backoff: full jitter between ``backoff_min_s`` and ``backoff_max_s`` (1 s by default), so the
first batch reaches a hub that came back within about a second, and one gateway never sends
more than 1/backoff_min_s attempts per second to a hub that is down.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from agent import metrics
from agent.buffer import AlertRow, Buffer, Row
from agent.config import AgentConfig
from agent.tls import hub_ssl_context
from shared import __version__
from shared.errors import ErrorBody, decode_error
from shared.wire import Batch, WireAlert, WireMark, WireReading, decode_response, encode_batch

if TYPE_CHECKING:
    from agent.sparkplug.marks import MarkStore

log = structlog.get_logger("agent.sync")


class _Retryable(Exception):
    """A failure worth retrying with backoff; the message goes to last_sync."""

    def __init__(self, message: str, retry_after_s: float = 0.0, timed_out: bool = False) -> None:
        super().__init__(message)
        # The hub's Retry-After (429/503): the next attempt waits at least this long.
        self.retry_after_s = retry_after_s
        # The request went out but no answer came within timeout_s.
        self.timed_out = timed_out


class Outcome(enum.Enum):
    IDLE = "idle"  # nothing to send
    SENT = "sent"  # progress made (acked, or rejected rows moved out): go again at once
    HELD = "held"  # the hub refused for a reason a retry will not fix soon
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one :meth:`Syncer.sync_once` did, for the loop that decides what comes next."""

    outcome: Outcome
    # The hub stored the batch as it was sent (2xx): a batch read ahead after it is good.
    acked: bool = False
    # The batch was claimed again before it went (rows evicted meanwhile, or a timeout
    # shrank it): what was read ahead after the first claim is stale.
    reclaimed: bool = False
    # The next batch, being claimed and encoded in a worker thread (read_ahead=True).
    ahead: asyncio.Future[_Prepared | None] | None = None
    # Set when an attempt failed: the newest seq stored then. Once the hub answers again,
    # the floor moves here (everything stored during the outage is backlog, module doc).
    floor_next: int | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A claimed and encoded batch, ready to POST."""

    rows: list[Row]
    alerts: list[AlertRow]
    body: bytes
    # Sparkplug stale/fresh marks the body carries (agent.sparkplug.marks).
    marks: tuple[WireMark, ...] = ()
    # Where the next batch's claim goes on from: the last old (<= floor) and new seq sent.
    after_old: int = 0
    after_new: int = 0


@dataclass(frozen=True, slots=True)
class _Chase:
    """The next batch, sent while the current one is still on the wire (Syncer._chase)."""

    # Whether it went out at all (not when the current batch was answered first).
    posted: bool = False
    # The hub stored it (2xx) and its rows are acked.
    stored: bool = False
    # The batch after it, read ahead once it was posted.
    ahead: asyncio.Future[_Prepared | None] | None = None


class Syncer:
    def __init__(
        self,
        cfg: AgentConfig,
        buffer: Buffer,
        *,
        wake: asyncio.Event | None = None,
        space_freed: asyncio.Event | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_config_version: Callable[[int], None] | None = None,
        wire_alert: Callable[[AlertRow], WireAlert] | None = None,
        marks: MarkStore | None = None,
    ) -> None:
        self.cfg = cfg
        # Pending Sparkplug stale/fresh marks ride along in every batch when set.
        self.marks = marks
        # Told the hub's rules version from every 2xx answer (agent.rules.RulesSync).
        self.on_config_version = on_config_version
        # Unsynced alerts ride along in every batch when set (agent.rules.wire_alert).
        self.wire_alert = wire_alert
        self.buffer = buffer
        self.wake = wake or asyncio.Event()
        self.space_freed = space_freed or asyncio.Event()
        self.transport = transport
        # Readings per batch: halved by timeouts, doubled back by quick answers, never above
        # the ceiling (the configured maximum, lowered for good by a 413).
        self.limit = self.ceiling = cfg.hub.batch_max_readings
        self.url = cfg.hub.url.rstrip("/") + "/api/v1/ingest"
        self._stopping = asyncio.Event()
        # Requests on the wire (up to two in a drain, see _chase); shutdown lets them finish
        # rather than cut them off.
        self._posts = 0
        # A batch goes out beside the one on the wire only while the link is healthy: the last
        # batch was answered well within timeout_s and no timeout has shrunk the batches. On a
        # slow or failing link the batches go one at a time, as the retry rules above expect.
        self._link_quick = False
        # Rows above the floor are "live" and overtake the backlog below it (module doc).
        self.floor = 0

    @property
    def in_flight(self) -> bool:
        return self._posts > 0

    def _client(self) -> httpx.AsyncClient:
        h = self.cfg.hub
        headers = {"Authorization": f"Bearer {h.token}", "Content-Type": "application/json"}
        if h.gzip:
            headers["Content-Encoding"] = "gzip"
        return httpx.AsyncClient(
            transport=self.transport,
            timeout=httpx.Timeout(h.timeout_s),
            headers=headers,
            verify=hub_ssl_context(h),  # [hub] ca_file / client_cert (agent.tls)
        )

    async def run(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        # The next batch, claimed and encoded in a worker thread while the hub stores the
        # current one: the agent's half of a drain (claim, encode, fsync) then overlaps the
        # hub's half instead of adding to it.
        ahead: asyncio.Future[_Prepared | None] | None = None
        # Whatever is in the buffer at start waited through an outage: it is the backlog.
        self.floor = self.buffer.max_seq()
        # A floor move waits for the next batch the hub takes (a refusal may come first).
        floor_next: int | None = None
        async with self._client() as http:
            while not stopping.is_set():
                # Clear before looking, so data committed while we send wakes the next wait.
                self.wake.clear()
                prepared = await ahead if ahead is not None else None
                result = await self.sync_once(http, prepared, read_ahead=True)
                outcome, ahead = result.outcome, result.ahead
                if result.floor_next is not None:
                    floor_next = result.floor_next
                floor_moved = False
                if floor_next is not None and outcome is Outcome.SENT:
                    self.floor, floor_next, floor_moved = floor_next, None, True
                if ahead is not None and (
                    outcome is not Outcome.SENT
                    or not result.acked
                    or floor_moved
                    or result.reclaimed
                ):
                    # The batch was not stored as sent (retry, 413, 422, claimed again): what
                    # was read ahead after it is stale. Let the thread finish, then drop its result.
                    await asyncio.wait([ahead])
                    ahead = None
                if outcome is Outcome.SENT:
                    continue
                if outcome is Outcome.STOPPED:
                    break
                if outcome is Outcome.IDLE:
                    await self._wait(self.cfg.hub.interval_s, wake_on_data=True)
                else:
                    await self._wait(self.cfg.hub.backoff_max_s, wake_on_data=False)
        if ahead is not None:
            await asyncio.wait([ahead])

    async def _wait(self, seconds: float, *, wake_on_data: bool) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wake_on_data:
            waiters.append(asyncio.ensure_future(self.wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _sleep(self, seconds: float) -> None:
        await self._wait(seconds, wake_on_data=False)

    def _batch(
        self,
        rows: list[Row],
        alerts: list[AlertRow] | None = None,
        marks: tuple[WireMark, ...] = (),
    ) -> Batch:
        wire = self.wire_alert
        return Batch(
            gateway_id=self.cfg.gateway_id,
            # The rows themselves: a Row is a tuple of WireReading's fields in its order, so it
            # encodes to the same JSON array, and a 40,000-reading batch skips making 40,000
            # objects (tests/agent/test_sync.py pins the equality).
            readings=cast("list[WireReading]", rows),
            alerts=[wire(a) for a in alerts] if alerts and wire is not None else [],
            marks=list(marks),
            sent_at=time.time(),
            backlog=max(0, self.buffer.backlog - len(rows)),
            dropped=self.buffer.dropped,
            dead_letters=self.buffer.dead_letters_total,
            agent_version=__version__,
        )

    async def _post(self, http: httpx.AsyncClient, body: bytes) -> httpx.Response:
        self._posts += 1
        started = time.perf_counter()
        # One id per request: the hub logs it on every line about the request and echoes it.
        headers = {"X-Request-ID": uuid.uuid4().hex}
        try:
            resp = await http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:  # connect errors, timeouts, dropped connections
            metrics.SYNC_REQUESTS.labels("retry").inc()
            raise _Retryable(
                f"{type(exc).__name__}: {exc}".rstrip(": "),
                timed_out=isinstance(exc, httpx.WriteTimeout | httpx.ReadTimeout),
            ) from exc
        finally:
            self._posts -= 1
            metrics.SYNC_DURATION.observe(time.perf_counter() - started)
        if resp.status_code >= 500 or resp.status_code == 429:
            metrics.SYNC_REQUESTS.labels("retry").inc()
            raise _Retryable(
                f"HTTP {resp.status_code}: {_error_message(resp)}", _retry_after_s(resp)
            )
        if resp.status_code >= 400:
            metrics.SYNC_REQUESTS.labels("refused").inc()
        return resp

    def _record(self, result: str, accepted: int = 0, duplicates: int = 0) -> None:
        self.buffer.set_state(
            last_sync_at=time.time(),
            last_sync_result=result,
            last_sync_accepted=accepted,
            last_sync_duplicates=duplicates,
            last_sync_error="" if result == "ok" else result.removeprefix("error: "),
        )

    def _before_sleep(self, state: RetryCallState) -> int:
        """Count, record and log a failed attempt; returns the newest seq stored now
        (everything stored until the hub answers again is backlog, what comes after is live)."""
        exc = state.outcome.exception() if state.outcome else None
        metrics.SYNC_RETRIES.inc()
        self._record(f"error: {exc}")
        log.warning(
            "sync failed, retrying",
            error=str(exc),
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 2),
            backlog=self.buffer.backlog,
        )
        return self.buffer.max_seq()

    def _prepare(
        self,
        after_old: int = 0,
        after_new: int = 0,
        *,
        ahead: bool = False,
        skip_alerts: frozenset[int] = frozenset(),
    ) -> _Prepared | None:
        new, old = self.buffer.claim_live_first(
            self.limit,
            self.cfg.hub.batch_max_bytes,
            floor=self.floor,
            after_old=after_old,
            after_new=after_new,
            live_share=self.cfg.hub.live_share,
            ahead=ahead,
        )
        rows = new + old
        if ahead and not rows:
            return None  # nothing new: the loop claims afresh (alerts too) once this batch is in
        alerts = (
            [
                a
                for a in self.buffer.claim_alerts(self.cfg.alerts.batch_max, ahead=ahead)
                if a.id not in skip_alerts
            ]
            if self.wire_alert is not None
            else []
        )
        marks = tuple(self.marks.pending()) if self.marks is not None else ()
        if not rows and not alerts and not marks:
            return None
        body = encode_batch(self._batch(rows, alerts, marks), compress=self.cfg.hub.gzip)
        if ahead:
            # Every seq in a batch must survive a power cut before the hub may store it, or a
            # rolled-back buffer could hand the same seq to a different reading (agent/buffer/).
            self.buffer.make_durable(_top(rows))
        return _Prepared(
            rows,
            alerts,
            body,
            marks,
            after_old=old[-1].seq if old else after_old,
            after_new=new[-1].seq if new else after_new,
        )

    def _read_ahead(
        self, after: _Prepared, sent_alerts: list[AlertRow]
    ) -> asyncio.Future[_Prepared | None]:
        """The batch after ``after``, claimed and encoded in a worker thread (its alerts
        leave out those already on their way)."""
        return asyncio.ensure_future(
            asyncio.to_thread(
                self._prepare,
                after.after_old,
                after.after_new,
                ahead=True,
                skip_alerts=frozenset(a.id for a in sent_alerts),
            )
        )

    async def sync_once(
        self,
        http: httpx.AsyncClient,
        prepared: _Prepared | None = None,
        *,
        read_ahead: bool = False,
    ) -> SyncResult:
        """Send one batch, retrying transient failures until it is answered or we stop.

        With ``read_ahead`` the next batch is prepared in a worker thread meanwhile and
        handed to the caller in the result.
        """
        if prepared is None:
            # On the loop thread: the main connection is also ingest's, never share it.
            prepared = self._prepare()
            if prepared is None:
                return SyncResult(Outcome.IDLE)
            await asyncio.to_thread(self.buffer.make_durable, _top(prepared.rows))  # _prepare
        rows, alerts, body = prepared.rows, prepared.alerts, prepared.body
        marks = prepared.marks
        ahead: asyncio.Future[_Prepared | None] | None = None
        if read_ahead and rows:
            ahead = self._read_ahead(prepared, alerts)
        # While this batch is on the wire, the next one follows it (module doc: two in flight).
        answered = asyncio.Event()
        chase = (
            asyncio.ensure_future(self._chase(http, ahead, answered, alerts))
            if ahead is not None and self._link_quick and self.limit == self.ceiling
            else None
        )
        result = await self._send(http, rows, alerts, body, marks, ahead, chase, answered)
        return await self._caught_up(result, chase)

    async def _send(
        self,
        http: httpx.AsyncClient,
        rows: list[Row],
        alerts: list[AlertRow],
        body: bytes,
        marks: tuple[WireMark, ...],
        ahead: asyncio.Future[_Prepared | None] | None,
        chase: asyncio.Future[_Chase] | None,
        answered: asyncio.Event,
    ) -> SyncResult:
        """The retry loop of one batch (sync_once)."""
        floor_next: int | None = None

        def before_sleep(state: RetryCallState) -> None:
            nonlocal floor_next
            floor_next = self._before_sleep(state)

        h = self.cfg.hub
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            wait=_at_least_retry_after(
                wait_random_exponential(
                    multiplier=h.backoff_min_s, min=h.backoff_min_s, max=h.backoff_max_s
                )
            ),
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        dropped_at = self.buffer.dropped
        shrunk = reclaimed = False
        try:
            async for attempt in retrying:
                with attempt:
                    retry = attempt.retry_state.attempt_number > 1
                    if retry and chase is not None and not chase.done():
                        # A retry, and the batch behind this one is still on the wire: let it
                        # finish first, so a batch claimed again below never races its ack.
                        await asyncio.wait([chase])
                    if self.buffer.dropped != dropped_at or shrunk:
                        # While we waited, a full buffer (drop_oldest) evicted rows, maybe some
                        # of this very batch: they are counted as dropped and must not reach
                        # the hub after all. Or the batch timed out and a smaller one may
                        # pass. Claim again from what is still stored.
                        dropped_at = self.buffer.dropped
                        shrunk = False
                        reclaimed = True
                        fresh = self._prepare()
                        if fresh is None:
                            return SyncResult(
                                Outcome.IDLE, reclaimed=True, ahead=ahead, floor_next=floor_next
                            )
                        await asyncio.to_thread(self.buffer.make_durable, _top(fresh.rows))
                        rows, alerts, body = fresh.rows, fresh.alerts, fresh.body
                        marks = fresh.marks
                    started = time.monotonic()
                    try:
                        resp = await self._post(http, body)
                    except _Retryable as exc:
                        self._link_quick = False
                        shrunk = exc.timed_out and self._shrink(len(rows))
                        raise
                    finally:
                        answered.set()
        except _Retryable as exc:
            self._record(f"error: {exc}")
            return SyncResult(
                Outcome.STOPPED, reclaimed=reclaimed, ahead=ahead, floor_next=floor_next
            )
        outcome = self._handle(resp, rows, alerts, marks)
        acked = 200 <= resp.status_code < 300
        self._link_quick = acked and time.monotonic() - started < self.cfg.hub.timeout_s / 4
        if self._link_quick:
            self._grow()
        return SyncResult(outcome, acked, reclaimed, ahead, floor_next)

    async def _chase(
        self,
        http: httpx.AsyncClient,
        ahead: asyncio.Future[_Prepared | None],
        answered: asyncio.Event,
        current_alerts: list[AlertRow],
    ) -> _Chase:
        """Send the batch read ahead as soon as it is ready, if the current one is still
        unanswered: a drain keeps two batches on the wire, so the hub stores one while the
        other travels and is decoded (two hub threads, two database connections).

        One attempt only. Whatever becomes of it other than a 2xx, its rows simply stay in
        the buffer and go again in the next batches, by the careful one-at-a-time path."""
        nxt = await ahead
        if nxt is None or not nxt.rows or answered.is_set():
            return _Chase()
        after = self._read_ahead(nxt, [*current_alerts, *nxt.alerts])
        try:
            resp = await self._post(http, nxt.body)
        except _Retryable:
            return _Chase(posted=True, ahead=after)
        if not 200 <= resp.status_code < 300:
            # 4xx and the like: the one-at-a-time path meets it again and deals with it.
            return _Chase(posted=True, ahead=after)
        # Acked at once (its rows and the current batch's are disjoint): a retry of the current
        # batch that claims afresh must not find these rows still there.
        self._handle(resp, nxt.rows, nxt.alerts, nxt.marks)
        return _Chase(posted=True, stored=True, ahead=after)

    async def _caught_up(
        self, result: SyncResult, chase: asyncio.Future[_Chase] | None
    ) -> SyncResult:
        """The current batch's result once the batch chasing it is answered too; the loop's
        next batch is then the one after it."""
        if chase is None:
            return result
        chased = await chase
        if not chased.posted:
            return result  # the loop sends the read-ahead batch itself, as without a chase
        if chased.stored:
            return replace(result, ahead=chased.ahead)
        # Not stored: drop what was read ahead after it, so the next claim starts again from
        # the oldest unsent rows, which include its rows.
        if chased.ahead is not None:
            await asyncio.wait([chased.ahead])
        return replace(result, ahead=None, reclaimed=True)

    def _shrink(self, sent: int) -> bool:
        """After a timeout of a batch of ``sent`` readings: halve; False if it cannot."""
        if sent <= 1:
            return False
        self.limit = max(1, sent // 2)
        log.warning("sync timed out; halving the batch", batch_max_readings=self.limit)
        return True

    def _grow(self) -> None:
        if self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit * 2)
            log.info("sync answered quickly; doubling the batch", batch_max_readings=self.limit)

    def _handle(
        self,
        resp: httpx.Response,
        rows: list[Row],
        alerts: list[AlertRow] | None = None,
        marks: tuple[WireMark, ...] = (),
    ) -> Outcome:
        status = resp.status_code
        alerts = alerts or []
        if 200 <= status < 300:
            if marks and self.marks is not None:
                self.marks.acked(marks)
            seqs = [r.seq for r in rows]
            self.buffer.ack(seqs)
            metrics.sync_ok(len(rows))
            if alerts:
                self.buffer.ack_alerts([(a.id, a.version) for a in alerts])
            self.space_freed.set()
            accepted, duplicates = len(rows), 0
            try:
                result = decode_response(resp.content)
                accepted, duplicates = result.accepted, result.duplicates
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # The hub stored the batch (2xx); an answer we cannot read changes nothing.
                log.warning("hub answered 2xx with an unexpected body", error=str(exc))
            else:
                if self.on_config_version is not None:
                    self.on_config_version(result.config_version)
            self._record("ok", accepted, duplicates)
            log.debug(
                "synced",
                readings=len(rows),
                accepted=accepted,
                duplicates=duplicates,
                backlog=self.buffer.backlog,
            )
            return Outcome.SENT
        message = _error_message(resp)
        if status == 422:
            reasons = _rejected_seqs(resp, {r.seq for r in rows})
            bad_alerts = _rejected_alerts(resp, alerts)
            bad_marks = _rejected_marks(resp, marks)
            if bad_marks and self.marks is not None:
                # As for alerts: a mark the hub can never take must not hold the readings back.
                self.marks.acked(bad_marks)
                log.error(
                    "hub rejected Sparkplug stale marks; not sending them again",
                    keys=",".join(m.key for m in bad_marks),
                    error=message,
                )
                if not reasons and not bad_alerts:
                    return Outcome.SENT
            if bad_alerts:
                # An alert the hub can never take must not hold the readings back: it goes to
                # the dead letters with the hub's reason (counted in status, never silent)
                # and the rest goes again at once.
                self.buffer.reject_alerts(bad_alerts)
                log.error(
                    "hub rejected alerts; moved to dead letters",
                    ids=",".join(str(a.id) for a, _ in bad_alerts),
                    problems="; ".join(f"alert {a.id}: {why}" for a, why in bad_alerts),
                    error=message,
                )
                if not reasons:
                    return Outcome.SENT
            if reasons:
                moved = self.buffer.reject(reasons)
                self._record(f"error: HTTP 422: {moved} reading(s) rejected, moved to dead letters")
                log.warning(
                    "hub rejected readings; moved to dead letters",
                    count=moved,
                    first=next(iter(reasons.values())),
                )
                return Outcome.SENT
        if status == 413 and self.limit > 1:
            self.limit = self.ceiling = max(1, len(rows) // 2)
            log.warning("hub says batch too large; halving", batch_max_readings=self.limit)
            return Outcome.SENT
        self._record(f"error: HTTP {status}: {message}")
        log.error(
            "hub refused the sync batch; keeping every reading and retrying later",
            status=status,
            error=message,
            url=self.url,
            gateway_id=self.cfg.gateway_id,
            retry_in_s=self.cfg.hub.backoff_max_s,
            backlog=self.buffer.backlog,
        )
        return Outcome.HELD


def _top(rows: list[Row]) -> int:
    return max((r.seq for r in rows), default=0)


# A hub asking for longer than this is misconfigured; a gateway must not go quiet for hours.
_MAX_RETRY_AFTER_S = 300.0


def _retry_after_s(resp: httpx.Response) -> float:
    """Retry-After in seconds (the delta-seconds form the hub sends), else 0."""
    raw = resp.headers.get("retry-after", "")
    try:
        return min(_MAX_RETRY_AFTER_S, max(0.0, float(raw)))
    except ValueError:
        return 0.0


def _at_least_retry_after(base: Callable[[RetryCallState], float]) -> Callable[..., float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        floor = exc.retry_after_s if isinstance(exc, _Retryable) else 0.0
        return max(base(state), floor)

    return wait


def _error(resp: httpx.Response) -> ErrorBody:
    """The hub's error envelope; an empty one when the body is not an envelope."""
    return decode_error(resp.content) or ErrorBody()


def _error_message(resp: httpx.Response) -> str:
    err = _error(resp)
    msg = err.message or resp.text[:200] or resp.reason_phrase
    return f"{err.code}: {msg}" if err.code else msg


def _rejected_alerts(resp: httpx.Response, sent: list[AlertRow]) -> list[tuple[AlertRow, str]]:
    """Each alert we sent that a 422's details name (``alert_id``), with the hub's reason."""
    named = _error(resp).alerts()
    return [(a, _reason(named[a.id])) for a in sent if a.id in named]


def _reason(details: list[dict[str, Any]]) -> str:
    """A dead letter's reason from the hub's details about one culprit."""
    parts = []
    for d in details:
        what = f"{d['field']}: " if d.get("field") else ""
        parts.append(f"rejected by hub: {what}{d.get('message', 'invalid')}")
    return "; ".join(parts)


def _rejected_marks(resp: httpx.Response, sent: tuple[WireMark, ...]) -> list[WireMark]:
    """The marks a 422's details name (``mark_index``: their place in the batch)."""
    named = {d.get("mark_index") for d in _error(resp).details}
    return [m for i, m in enumerate(sent) if i in named]


def _rejected_seqs(resp: httpx.Response, sent: set[int]) -> dict[int, str]:
    """seq -> dead-letter reason for each detail naming a seq we sent."""
    return {seq: _reason(details) for seq, details in _error(resp).seqs().items() if seq in sent}

"""Webhooks: alert and gateway events POSTed to the ``[[webhooks]]`` of hub.toml.

* Storage queues every event in the ``alert_events`` outbox inside the transaction that made
  it (hub.storage.alerts), so ingest and the operators' requests never wait on a receiver.
  A sender thread per hub process reads the outbox and delivers, in order, per URL.
* The body is JSON ``{"id", "event", "at", "reannounced", "escalated", "alert", "by"}`` (``by``: who
  caused it, a user, token, gateway or the hub itself, "system"); ``id`` is the event's
  id, the same on every attempt, so a receiver drops a repeat (idempotency).
  ``X-Edge-Signature: sha256=<hex>`` is HMAC-SHA256 of the body bytes under the webhook's
  ``secret``; ``X-Edge-Event`` and ``X-Edge-Event-Id`` repeat the event and its id.
* A shelved alert is silent: its transitions are journaled, not queued; when the shelve is
  lifted or runs out and the alert is still active, it is queued once more as opened, with
  ``reannounced`` true (hub.storage.alert_rows). An active alarm whose severity rises is
  queued as opened again, with ``escalated`` true.
* The hook's ``timeout_s`` bounds each step of an attempt (connecting, sending, each read of
  the answer), and ``ATTEMPT_DEADLINE`` of them the whole attempt: a receiver that answers a
  byte at a time is cut off then (the connection closed), like one that does not answer.
* Failed attempts (no answer in time, 5xx, 408, 429) are retried with exponential backoff and
  jitter (tenacity) up to ``max_attempts``; then the event is given up and counted. Any other
  4xx is a refusal: not retried, counted as failed. ``/metrics`` has both counters.
* With several hub processes, each URL has a lease in ``webhook_cursors``: one process
  delivers to it at a time, and the cursor moves only after a delivery ends. The holder
  renews the lease before every attempt and before every slice of a backoff (a slice is at
  most a third of the lease), and a lease lasts at least ``ATTEMPT_TIMEOUTS`` of the hook's
  ``timeout_s``, one more than the attempt's deadline: it never runs out during an attempt
  or a backoff, however long. A holder whose renewal finds the lease taken (it stalled past
  it) sends nothing more: the new holder sends the event, from the cursor this process did
  not move.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec
import structlog
from prometheus_client import Counter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from hub.alert_settings import WebhookSettings
from hub.alert_view import alert_view
from hub.background import BackgroundJob
from hub.storage import Storage
from shared.timeutil import to_rfc3339

log = structlog.get_logger("hub.notify")

ATTEMPTS = Counter(
    "edge_hub_webhook_attempts",
    "Webhook POSTs by outcome (ok, error: no answer or a retryable status, refused: other 4xx).",
    ["result"],
)
DELIVERIES = Counter(
    "edge_hub_webhook_deliveries",
    "Webhook events by final outcome (delivered, failed: given up after max_attempts or refused).",
    ["result"],
)
SIGNATURE_HEADER = "X-Edge-Signature"
# The hook's timeout_s bounds each step of an attempt (connect, each write, each read), not
# the whole: a receiver that answers a byte at a time, each just inside timeout_s, would keep
# one attempt going for ever. So an attempt is also cut off this many timeouts after it began,
# whatever the receiver does, and counts as failed (retried) like a timeout.
ATTEMPT_DEADLINE = 3
# A lease lasts one timeout longer than the longest attempt, to spare for the database round
# trips around it: it never runs out while an attempt is still under way.
ATTEMPT_TIMEOUTS = ATTEMPT_DEADLINE + 1
# A backoff is slept in slices of at most this share of the lease, renewing before each.
SLICE_OF_LEASE = 1 / 3
_RETRY_STATUS = frozenset({408, 429})
BATCH = 100


class _Retryable(Exception):
    """An attempt that may succeed later (no answer, 5xx, 408, 429)."""


class _Refused(Exception):
    """The receiver refused the event for good (a 4xx other than 408/429)."""


class _LeaseLost(Exception):
    """Another hub process holds the URL's lease now: it delivers the event, not this one."""


def sign(secret: str, body: bytes) -> str:
    """The X-Edge-Signature value: ``sha256=`` + hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(event: dict[str, Any]) -> bytes:
    """The JSON body of an outbox row: the alert as the API shows it when the event happened."""
    row = json.loads(event["payload"])
    return msgspec.json.encode(
        {
            "id": event["event_id"],
            "event": event["event"],
            "at": to_rfc3339(event["at"]),
            # True: an active alert announced again after a shelve ended (events of older
            # hubs carry no such key).
            "reannounced": bool(row.get("reannounced", False)),
            # True: an active alarm announced again because its severity rose.
            "escalated": bool(row.get("escalated", False)),
            "alert": alert_view(row, at=event["at"]),
            # Who caused the event (events queued by older hubs do not say: null).
            "by": row.get("by"),
        }
    )


class WebhookSender(BackgroundJob):
    """Delivers the outbox to every configured webhook, in a daemon thread."""

    name = "webhooks"

    def __init__(
        self,
        storage: Storage,
        hooks: Sequence[WebhookSettings],
        *,
        poll_s: float = 0.5,
        lease_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``lease_s``: how long a URL's lease lasts from each renewal (longer for a hook whose
        ``timeout_s`` needs it, ``lease_for``); another process takes over a URL that long
        after its holder died. ``transport``: what carries the POSTs (the network unless
        given)."""
        super().__init__()
        self.storage = storage
        self.hooks = list(hooks)
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex  # this process, as the holder of URL leases
        self._transport = transport

    # -- one event ----------------------------------------------------------------------

    def lease_for(self, hook: WebhookSettings) -> float:
        """The lease on ``hook``'s URL: ``lease_s``, or longer than its longest attempt."""
        return max(self.lease_s, ATTEMPT_TIMEOUTS * hook.timeout_s)

    def _keep_lease(self, hook: WebhookSettings) -> None:
        """Renew the lease on ``hook``'s URL to a full ``lease_for`` from now, or raise
        _LeaseLost when another process took it."""
        if not self.storage.webhooks.webhook_renew(hook.url, self.owner, self.lease_for(hook)):
            raise _LeaseLost(hook.url)

    def _post(self, hook: WebhookSettings, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST ``body`` to ``hook``'s URL; TimeoutError once ATTEMPT_DEADLINE timeouts passed."""
        # In asyncio, because a cancelled request closes its connection there and then; a
        # blocking socket read cannot be cut short from outside. A loop and a client of their
        # own per attempt: webhooks are few, and nothing outlives the attempt.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self._post_within(hook, body, headers))
        finally:
            # Not asyncio.run, which waits for its executor threads: a name lookup the deadline
            # cut off may still be running in one.
            loop.close()

    async def _post_within(
        self, hook: WebhookSettings, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=self._transport, follow_redirects=False, timeout=hook.timeout_s
        ) as client:
            async with asyncio.timeout(ATTEMPT_DEADLINE * hook.timeout_s):
                return await client.post(hook.url, content=body, headers=headers)

    def _attempt(self, hook: WebhookSettings, event: dict[str, Any], body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(hook.secret, body),
            "X-Edge-Event": str(event["event"]),
            "X-Edge-Event-Id": str(event["event_id"]),
        }
        try:
            resp = self._post(hook, body, headers)
        except httpx.HTTPError as exc:
            ATTEMPTS.labels("error").inc()
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        except TimeoutError:
            ATTEMPTS.labels("error").inc()
            raise _Retryable(
                f"no whole answer within {ATTEMPT_DEADLINE} x timeout_s ({hook.timeout_s} s)"
            ) from None
        if resp.status_code < 300:
            ATTEMPTS.labels("ok").inc()
            return
        if resp.status_code >= 500 or resp.status_code in _RETRY_STATUS:
            ATTEMPTS.labels("error").inc()
            raise _Retryable(f"HTTP {resp.status_code}")
        ATTEMPTS.labels("refused").inc()
        raise _Refused(f"HTTP {resp.status_code}")

    def deliver(self, hook: WebhookSettings, event: dict[str, Any]) -> bool:
        """Deliver one event (retrying); True when the receiver took it. Raises _LeaseLost,
        with nothing more sent, when another process took the URL meanwhile."""
        body = event_body(event)
        slice_s = self.lease_for(hook) * SLICE_OF_LEASE

        def attempt() -> None:
            # A full lease ahead of every POST, longer than the POST may take: no other
            # process can take the URL and send the event while this one is sending it.
            self._keep_lease(hook)
            self._attempt(hook, event, body)

        def backoff(seconds: float) -> None:
            # Renewed slice by slice: a backoff longer than the lease (backoff_max_s may be
            # minutes) never lets it lapse.
            left = seconds
            while left > 0:
                self._keep_lease(hook)
                self._sleep(min(left, slice_s))
                left -= slice_s

        def failed(state: RetryCallState) -> None:
            log.info(
                "webhook attempt failed, retrying",
                url=hook.url,
                event_id=event["event_id"],
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else None,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(hook.max_attempts),
            wait=wait_random_exponential(
                multiplier=hook.backoff_min_s, min=hook.backoff_min_s, max=hook.backoff_max_s
            ),
            sleep=backoff,
            before_sleep=failed,
            reraise=True,
        )
        try:
            retrying(attempt)
        except (_Retryable, _Refused) as exc:
            DELIVERIES.labels("failed").inc()
            log.warning(
                "webhook event given up",
                url=hook.url,
                # structlog takes "event" for the message itself: a key of that name raises
                webhook_event=event["event"],
                event_id=event["event_id"],
                error=str(exc),
            )
            return False
        DELIVERIES.labels("delivered").inc()
        return True

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    # -- the outbox ---------------------------------------------------------------------

    def pump(self, hook: WebhookSettings) -> int:
        """Deliver what is queued for one webhook; how many events were handled."""
        last = self.storage.webhook_lease(hook.url, self.owner, self.lease_for(hook))
        if last is None:
            return 0  # nothing new, or another hub process delivers to this URL
        handled = 0
        for event in self.storage.alert_events_after(last, BATCH):
            if self._stop.is_set():
                break
            if event["event"] in hook.events:
                try:
                    self.deliver(hook, event)
                except _LeaseLost:
                    log.info(
                        "webhook lease taken by another hub process, which sends the event",
                        url=hook.url,
                        event_id=event["event_id"],
                    )
                    break
            if not self.storage.webhook_delivered(hook.url, self.owner, int(event["id"])):
                break  # the lease went to another process
            handled += 1
        return handled

    def run(self) -> None:
        while not self._stop.is_set():
            busy = False
            for hook in self.hooks:
                try:
                    busy |= self.pump(hook) > 0
                except _Stopped:
                    return
                except Exception:
                    log.exception("webhook delivery failed", url=hook.url)
            if not busy:
                self._stop.wait(self.poll_s)


class _Stopped(Exception):
    """The hub is stopping: leave the retry loop (the event stays queued)."""

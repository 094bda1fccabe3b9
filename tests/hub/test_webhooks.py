"""Webhooks against a real receiver on 127.0.0.1, with a real hub on both engines: the body
is signed (HMAC-SHA256, X-Edge-Signature: sha256=<hex>), carries an event id, failed attempts
are retried with backoff, each event is taken once, ingest does not wait for the receiver,
and failures are counted in /metrics. With several hub processes (senders on one storage,
both engines), one holds a URL's lease through a backoff longer than the lease, and one
whose lease was taken sends no more."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY

from hub.alert_settings import WebhookSettings
from hub.notify import WebhookSender
from hub.storage import GatewayReport, Storage
from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.edge_alerts import RECENT_T0, threshold_alert
from tests.hub.conftest import HubProcess, start_hub, token

SECRET = "s3cr3t-webhook-key"
# Recent: the hub's alert watch (every 0.2 s in a test below) would mark an alert opened in
# 2023 stale at once, changing the alert its events carry.
T0 = RECENT_T0


class Toml:
    """A value conftest.write_config writes as TOML as is (inline tables and arrays)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Receiver:
    """An HTTP endpoint that checks each signature, refuses the first ``fail_first`` POSTs
    with 503, and keeps every event it accepted (by id)."""

    def __init__(
        self, fail_first: int, gate: threading.Event | None = None, host: str = "127.0.0.1"
    ) -> None:
        """``host``: the address it listens on (a free port of it)."""
        self.fail_first = fail_first
        # With a gate: each POST waits for it (a receiver that hangs); ``holding`` is set once
        # a POST is waiting.
        self.gate = gate
        self.holding = threading.Event()
        self.requests: list[tuple[str, dict[str, Any], bool]] = []  # path, body, signature ok
        self.accepted: dict[str, list[dict[str, Any]]] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.gate is not None:
                    receiver.holding.set()
                    receiver.gate.wait(60)
                expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(self.headers.get("X-Edge-Signature", ""), expected)
                body = json.loads(raw)
                with receiver.changed:
                    receiver.requests.append((self.path, body, signed))
                    refuse = len(receiver.requests) <= receiver.fail_first or not signed
                    if not refuse:
                        receiver.accepted.setdefault(body["id"], []).append(body)
                    receiver.changed.notify_all()
                self.send_response(503 if refuse else 204)
                self.end_headers()

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The first accepted body of each event, once ``n`` distinct events arrived (the
        timeout only detects a hang)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.accepted) >= n, timeout), self.requests
            return [bodies[0] for bodies in self.accepted.values()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooked(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[tuple[HubProcess, Receiver]]:
    """A hub (on each engine in turn) with two webhooks, and the receiver behind them."""
    receiver = Receiver(fail_first=2)
    hooks = Toml(
        "["
        f'{{url = "{receiver.url}/all", secret = "{SECRET}", backoff_min_s = 0.05, '
        "backoff_max_s = 0.2, max_attempts = 10}, "
        f'{{url = "{receiver.url}/gateways", secret = "{SECRET}", '
        'events = ["gateway.offline", "gateway.online"]}'
        "]"
    )
    server = start_hub(
        tmp_path_factory.mktemp("hooked"),
        database=hub_database,
        webhooks=hooks,
        alerts=Toml("{gateway_offline_after_s = 3600}"),
    )
    # Stopped however the setup or the tests end: a hub left running outlives the session.
    try:
        server.tokens = {
            "gw1": token(server.config, "gateway", "add", "gw-01", "--factory", "acme"),
            "operator": token(
                server.config, "token", "add", "--role", "operator", "--name", "shift lead"
            ),
        }
        yield server, receiver
    finally:
        code = server.stop()
        receiver.close()
    assert code == 0


def ingest(hub: HubProcess, seq: int, alert: WireAlert) -> None:
    body = encode_batch(
        Batch(
            gateway_id="gw-01",
            readings=[WireReading(seq, alert.key, T0 + seq, alert.value, None)],
            alerts=[alert],
        )
    )
    with hub.client("gw1") as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text


def metric(hub: HubProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{hub.url}/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    return 0.0


def test_signed_retried_and_each_event_once(hooked: tuple[HubProcess, Receiver]) -> None:
    hub, receiver = hooked
    alert = threshold_alert("wh/m1/temp", T0, severity="high", value=99.0)
    # The receiver refuses the first attempts; ingest answers regardless.
    ingest(hub, 1, alert)
    with hub.client("operator") as c:
        [row] = c.get("/api/v1/alerts").json()["data"]
        r = c.post(f"/api/v1/alerts/{row['id']}/ack", json={"comment": "seen"})
        assert r.status_code == 200, r.text
    ingest(hub, 2, msgspec.structs.replace(alert, closed_at=T0 + 5))
    got = receiver.wait_for(3)
    assert [b["event"] for b in got] == ["alert.opened", "alert.acknowledged", "alert.cleared"]
    assert all(len(bodies) == 1 for bodies in receiver.accepted.values())  # each id once
    assert all(signed for _, _, signed in receiver.requests)
    opened, acked, cleared = got
    assert opened["alert"]["state"] == "active" and opened["alert"]["acknowledged"] is False
    assert acked["alert"]["acknowledged"] is True
    assert acked["alert"]["acknowledged_by"]["role"] == "operator"
    # who caused each event: the gateway's sync, then the operator's token by its name
    gateway = {"kind": "gateway", "name": "gw-01", "display": None, "role": "gateway"}
    assert opened["by"] == cleared["by"] == {**gateway, "token_id": None}
    assert acked["by"] == {**acked["alert"]["acknowledged_by"]}
    assert (acked["by"]["kind"], acked["by"]["name"]) == ("token", "shift lead")
    assert cleared["alert"]["state"] == "cleared" and cleared["alert"]["id"] == row["id"]
    # The refused attempts were the first event, sent again under the same id.
    first_ids = [body["id"] for _, body, _ in receiver.requests[:3]]
    assert first_ids == [opened["id"]] * 3
    # the gateway-only hook got none of these
    assert all(path == "/all" for path, _, _ in receiver.requests)
    assert metric(hub, "edge_hub_webhook_attempts_total", result="error") >= 2
    assert metric(hub, "edge_hub_webhook_deliveries_total", result="delivered") >= 3


def test_a_hanging_receiver_never_holds_up_ingest(tmp_path: Path, database_url: str) -> None:
    gate = threading.Event()
    receiver = Receiver(fail_first=0, gate=gate)
    hub = start_hub(
        tmp_path,
        database=database_url,
        webhooks=Toml(f'[{{url = "{receiver.url}/slow", secret = "{SECRET}", timeout_s = 120}}]'),
    )
    try:
        hub.tokens = {"gw1": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")}
        alert = threshold_alert(
            "wh/m9/temp", T0, breach_type="below_minimum", threshold_value=5.0, value=4.0
        )
        ingest(hub, 1, alert)
        assert receiver.holding.wait(60)  # the sender is stuck in its POST ...
        ingest(hub, 2, msgspec.structs.replace(alert, closed_at=T0 + 1))  # ... ingest is not
        assert not gate.is_set()
        gate.set()
        assert [b["event"] for b in receiver.wait_for(2)] == ["alert.opened", "alert.cleared"]
    finally:
        gate.set()
        assert hub.stop() == 0
        receiver.close()


def test_bad_webhook_settings_stop_the_hub_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="webhook url"):
        start_hub(tmp_path, webhooks=Toml('[{url = "ftp://x", secret = "k"}]'))


def test_a_shelved_alert_sends_nothing_until_announced_again(
    tmp_path: Path, database_url: str
) -> None:
    receiver = Receiver(fail_first=0)
    hub = start_hub(
        tmp_path,
        database=database_url,
        webhooks=Toml(f'[{{url = "{receiver.url}/all", secret = "{SECRET}"}}]'),
        alerts=Toml("{check_interval_s = 0.2}"),
    )
    try:
        hub.tokens = {
            "gw1": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme"),
            "operator": token(hub.config, "token", "add", "--role", "operator"),
        }
        first = threshold_alert("wh/m2/temp", T0)
        ingest(hub, 1, first)
        with hub.client("operator") as c:
            [row] = c.get("/api/v1/alerts").json()["data"]
            act = f"/api/v1/alerts/{row['id']}"
            assert c.post(f"{act}/shelve", json={"duration_s": 3600}).status_code == 200
            # while shelved: an escalation and an acknowledgement send nothing ...
            ingest(hub, 2, msgspec.structs.replace(first, severity="critical", value=99.0))
            assert c.post(f"{act}/ack", json={"comment": "seen"}).status_code == 200
            # ... and lifting the shelve announces it again, once
            assert c.post(f"{act}/unshelve", json={}).status_code == 200
        got = receiver.wait_for(2)
        assert [(b["event"], b["reannounced"]) for b in got] == [
            ("alert.opened", False),
            ("alert.opened", True),
        ]
        assert got[1]["alert"]["severity"] == "critical" and got[1]["alert"]["acknowledged"]
        assert got[1]["alert"]["shelved"] is False
        # announced again because the operator lifted the shelve: the operator caused it
        assert (got[1]["by"]["kind"], got[1]["by"]["role"]) == ("token", "operator")
        # a shelve that runs out announces an alert still active, once
        second = msgspec.structs.replace(first, id=2, key="wh/m3/temp")
        ingest(hub, 3, second)
        receiver.wait_for(3)
        with hub.client("operator") as c:
            rows = c.get("/api/v1/alerts", params={"state": "active"}).json()["data"]
            [new] = [r for r in rows if r["id"] != row["id"]]
            r = c.post(f"/api/v1/alerts/{new['id']}/shelve", json={"duration_s": 0.5})
            assert r.status_code == 200, r.text
        got = receiver.wait_for(4)
        assert [(b["event"], b["reannounced"], b["alert"]["id"]) for b in got[2:]] == [
            ("alert.opened", False, new["id"]),
            ("alert.opened", True, new["id"]),
        ]
        # the shelve ran out by itself: the hub caused that announcement
        assert got[3]["by"] == {
            "kind": "system",
            "name": None,
            "display": None,
            "role": "system",
            "token_id": None,
        }
        # a later clear is announced as usual, and nothing else was sent meanwhile
        ingest(hub, 4, msgspec.structs.replace(second, closed_at=T0 + 9))
        got = receiver.wait_for(5)
        assert [b["event"] for b in got] == ["alert.opened"] * 4 + ["alert.cleared"]
        assert len(receiver.requests) == 5
    finally:
        assert hub.stop() == 0
        receiver.close()


class Clock:
    """The time the storage measures webhook leases in: now, plus what the senders' backoffs
    stepped on (they do not wait)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


class SteppedSender(WebhookSender):
    """A sender whose backoff does not wait: each slice runs ``meanwhile(seconds)`` instead,
    what the rest of the world does while this process sleeps."""

    def __init__(
        self,
        storage: Storage,
        hook: WebhookSettings,
        meanwhile: Callable[[float], None],
        lease_s: float,
    ) -> None:
        super().__init__(storage, [hook], lease_s=lease_s)
        self.meanwhile = meanwhile
        self.slept: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.meanwhile(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("hub.storage.webhooks.now", clock)
    return clock


def queue_event(storage: Storage) -> int:
    """An edge alert opened: one alert.opened event queued; its outbox id."""
    gateway = storage.add_gateway("gw-01", "acme", "h1")
    factory = int(storage.list_gateways()[0]["factory_id"])
    alert = threshold_alert("wh/m5/temp", T0)
    reading = WireReading(1, alert.key, T0, alert.value, None)
    storage.store_batch(gateway, factory, [reading], GatewayReport(0, 0, 0, "t"), [alert])
    [event] = storage.alert_events_after(0, 10)
    return int(event["id"])


def slow_hook(receiver: Receiver) -> WebhookSettings:
    """A webhook whose backoff (3 minutes) is three times the senders' 60 s lease."""
    return WebhookSettings(
        url=f"{receiver.url}/all",
        secret=SECRET,
        backoff_min_s=180,
        backoff_max_s=180,
        max_attempts=3,
        timeout_s=5,
    )


def test_a_backoff_longer_than_the_lease_keeps_it(storage: Storage, clock: Clock) -> None:
    receiver = Receiver(fail_first=1)
    hook = slow_hook(receiver)
    other = WebhookSender(storage, [hook], lease_s=60)  # a second hub process
    found: list[int] = []

    def meanwhile(seconds: float) -> None:
        clock.ahead += seconds
        found.append(other.pump(hook))  # the other process looks for work to do

    sender = SteppedSender(storage, hook, meanwhile, lease_s=60)
    try:
        assert sender.pump(hook) == 0  # the URL starts at the newest event: none yet
        queue_event(storage)
        assert sender.pump(hook) == 1  # refused once, sent again after the backoff
        assert sum(sender.slept) == pytest.approx(180)
        assert max(sender.slept) <= 20  # slices of a third of the lease at most
        # the other process found the URL leased all through the backoff ...
        assert found and not any(found)
        # ... so the receiver got the event once: the refused attempt and its repeat
        assert [len(bodies) for bodies in receiver.accepted.values()] == [1]
        assert len(receiver.requests) == 2
        assert other.pump(hook) == 0  # delivered: nothing left for anyone
    finally:
        sender.stop()
        other.stop()
        receiver.close()


def test_a_sender_whose_lease_was_taken_sends_no_more(storage: Storage, clock: Clock) -> None:
    receiver = Receiver(fail_first=1)
    hook = slow_hook(receiver)
    other = WebhookSender(storage, [hook], lease_s=60)  # a second hub process

    def meanwhile(seconds: float) -> None:
        if clock.ahead == 0:
            # This process stalls past its lease (a paused VM, say): the other one takes
            # the URL, at the event this one had not delivered.
            clock.ahead = 3600
            assert storage.webhook_lease(hook.url, other.owner, 60) == before
        clock.ahead += seconds

    sender = SteppedSender(storage, hook, meanwhile, lease_s=60)
    try:
        assert sender.pump(hook) == 0  # the URL starts at the newest event: none yet
        before = queue_event(storage) - 1
        assert sender.pump(hook) == 0  # gave the event up to the new holder ...
        assert len(sender.slept) == 1  # ... at the first renewal after the takeover,
        assert len(receiver.requests) == 1 and not receiver.accepted  # sending nothing more
        # The new holder finds the cursor where it was and sends the event, once.
        assert other.pump(hook) == 1
        assert [len(bodies) for bodies in receiver.accepted.values()] == [1]
        assert len(receiver.requests) == 2
        assert sender.pump(hook) == 0
    finally:
        sender.stop()
        other.stop()
        receiver.close()


class Dripper:
    """A receiver that takes each POST, then answers a byte at a time, each byte well inside
    ``timeout_s``: the rest of its headers (``part="headers"``) or its body. A whole answer
    would take ``drip_s``; it stops sooner when the sender hangs up."""

    def __init__(self, part: str, timeout_s: float, drip_s: float) -> None:
        self.part = part
        self.every_s = timeout_s / 6
        self.bytes = int(drip_s / self.every_s)
        # One entry per connection: True when the sender hung up before the whole answer,
        # False when the answer was dripped to its end.
        self.ended: list[bool] = []
        self.changed = threading.Condition()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.getsockname()[:2]
        return f"http://{host}:{port}/drip"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            with conn:
                hung_up = self._answer(conn)
            with self.changed:
                self.ended.append(hung_up)
                self.changed.notify_all()

    def _answer(self, conn: socket.socket) -> bool:
        """Drip the answer to one request; True when the sender hung up first."""
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        if self.part == "headers":
            conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Slow: ")
            drip, end = b"a" * self.bytes, b"\r\nContent-Length: 0\r\n\r\n"
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.bytes)
            drip, end = b"a" * self.bytes, b""
        # The pause between bytes is a wait for the sender to hang up (the socket becomes
        # readable at its end of stream), so a cut attempt is seen at once.
        conn.settimeout(self.every_s)
        for i in range(len(drip)):
            try:
                if conn.recv(1) == b"":
                    return True
            except TimeoutError:
                pass  # no end of stream within the pause: the sender still waits
            except OSError:
                return True  # reset by the sender
            try:
                conn.sendall(drip[i : i + 1])
            except OSError:
                return True
        conn.sendall(end)
        return False

    def wait_for(self, n: int, timeout: float = 60) -> list[bool]:
        """``ended`` once ``n`` connections ended (the timeout only detects a hang)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.ended) >= n, timeout), self.ended
            return list(self.ended)

    def close(self) -> None:
        # shutdown, not only close: it wakes the accept() under way in the server's thread
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


def counted(name: str, result: str) -> float:
    return REGISTRY.get_sample_value(f"edge_hub_webhook_{name}_total", {"result": result}) or 0.0


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_dripping_receiver_is_cut_off_at_the_attempt_deadline(
    storage: Storage, part: str
) -> None:
    # A whole answer would take 20 s, each byte 0.05 s apart (timeout_s 0.3 s never runs
    # out): the sender must hang up long before that, at ATTEMPT_DEADLINE x timeout_s.
    timeout_s = 0.3
    dripper = Dripper(part, timeout_s, drip_s=20.0)
    hook = WebhookSettings(
        url=dripper.url,
        secret=SECRET,
        timeout_s=timeout_s,
        max_attempts=2,
        backoff_min_s=0.01,
        backoff_max_s=0.01,
    )
    sender = WebhookSender(storage, [hook], lease_s=60)
    errors, failed = counted("attempts", "error"), counted("deliveries", "failed")
    try:
        assert sender.pump(hook) == 0  # the URL starts at the newest event: none yet
        queue_event(storage)
        # Both attempts cut off, each counted as failed, then the event given up.
        assert sender.pump(hook) == 1
        assert dripper.wait_for(2) == [True, True]  # the sender hung up, both times
        assert counted("attempts", "error") - errors == 2
        assert counted("deliveries", "failed") - failed == 1
        assert sender.pump(hook) == 0  # given up: not sent again
        assert len(dripper.ended) == 2
    finally:
        sender.stop()
        dripper.close()

"""deploy/nginx.conf in front of the real hub: the agent syncs through it over HTTPS (private
CA, and mTLS in a variant), and the requests that stop or poison a bare hub (issue: chunk
size ``ZZZ``, a 500 MB body without a token, a body shorter than its Content-Length) are
stopped at the front: the hub keeps its pid, answers /health/live, and its memory stays put.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psutil
import pytest

from devtools.stack import Agent, Broker, stopping, wait_for
from hub.config import HubSettings
from shared.wire import Batch, WireReading, encode_batch
from tests.deploy.nginx_front import (
    CONF,
    Certs,
    Nginx,
    TlsConn,
    make_certs,
    render,
    start_front,
    status_of,
)
from tests.hub.conftest import HubProcess, start_hub, token

pytestmark = pytest.mark.integration

MB = 1024 * 1024


@dataclass
class Front:
    hub: HubProcess
    nginx: Nginx
    certs: Certs

    @property
    def url(self) -> str:
        return f"https://localhost:{self.nginx.port}"

    def client(self, who: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.hub.tokens[who]}"} if who else {}
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            verify=ssl.create_default_context(cafile=str(self.certs.ca_file)),
            timeout=30,
            **kw,  # type: ignore[arg-type]
        )

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.ca_file))

    def hub_alive(self, pid: int) -> bool:
        """Same process as before, and it answers its liveness probe directly."""
        live = httpx.get(f"{self.hub.url}/health/live", timeout=5)
        return self.hub.proc.pid == pid and self.hub.proc.poll() is None and live.status_code == 200

    def rss(self) -> int:
        return int(psutil.Process(self.hub.proc.pid).memory_info().rss)

    def count(self, key: str) -> int:
        with httpx.Client(
            base_url=self.hub.url,
            headers={"Authorization": f"Bearer {self.hub.tokens['read']}"},
            timeout=10,
        ) as c:
            found = c.get("/api/v1/sensors", params={"key": key}).raise_for_status().json()
            if not found["data"]:
                return 0
            sid = found["data"][0]["id"]
            return int(c.get(f"/api/v1/sensors/{sid}/stats").json()["data"]["count"])


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    workdir = tmp_path_factory.mktemp("front")
    certs = make_certs(workdir / "tls")
    # The hub as deployed: default limits (max_body_bytes is what nginx.conf must match).
    (workdir / "hub").mkdir()
    hub = start_hub(workdir / "hub")
    hub.tokens = {
        "gw1": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme"),
        "gw2": token(hub.config, "gateway", "add", "gw-02", "--factory", "acme"),
        "read": token(hub.config, "token", "add", "--role", "read"),
        "admin": token(hub.config, "token", "add", "--role", "admin"),
    }
    nginx = start_front(workdir / "nginx", certs, hub.port)
    try:
        yield Front(hub, nginx, certs)
    finally:
        nginx.stop()
        assert hub.stop() == 0


# -- the shipped file ---------------------------------------------------------------------


def _directive(name: str) -> list[str]:
    # Active directives only: comments (the mTLS lines, IPv6 hint) do not count.
    text = re.sub(r"#[^\n]*", "", CONF.read_text())
    return re.findall(rf"^\s*{name}\s+([^;{{]+);", text, re.M)


def _nginx_size(text: str) -> int:
    units = {"k": 1024, "m": MB, "g": 1024 * MB}
    text = text.strip().lower()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def test_shipped_file_is_what_design_names() -> None:
    assert _directive("listen") == ["443 ssl"]
    assert _directive("ssl_certificate") == ["/etc/edge-hub/tls/hub.crt"]
    assert _directive("ssl_certificate_key") == ["/etc/edge-hub/tls/hub.key"]
    assert _directive("server") == ["127.0.0.1:8080", "127.0.0.1:8080 max_conns=4"]
    assert _directive("proxy_pass") == ["http://$edge_hub_upstream"]
    # The front refuses exactly what the hub would refuse, no more, no less.
    [limit] = _directive("client_max_body_size")
    assert _nginx_size(limit) == HubSettings().max_body_bytes
    assert _directive("proxy_request_buffering") == ["on"]
    assert _directive("proxy_http_version") == ["1.1"]
    for name in ("client_header_timeout", "client_body_timeout", "keepalive_timeout"):
        assert _directive(name), f"{name} must be set"
    # The hub listens on loopback by default: the front is the only way in.
    assert HubSettings().host == "127.0.0.1"


def test_rendered_config_passes_nginx_t(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "tls")
    for mtls in (False, True):
        nginx = Nginx(tmp_path / f"n{int(mtls)}", render(8443, certs.dir, 8080, mtls=mtls), 8443)
        result = nginx.check()
        assert result.returncode == 0, result.stderr


# -- the agent through the front ----------------------------------------------------------


def _publish(port: int, topic: str, values: list[float]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for v in values:
            client.publish(topic, json.dumps({"value": v}), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_agent_syncs_over_https_with_a_private_ca(front: Front, tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url=front.url,
        token=front.hub.tokens["gw1"],
        settings={"hub": {"ca_file": str(front.certs.ca_file)}},
    )
    with stopping(broker, agent):
        agent.start()
        _publish(broker.port, "factory/tls/m1/temp", [float(i) for i in range(25)])
        wait_for("25 readings at the hub", lambda: front.count("tls/m1/temp") == 25, timeout=30)
        assert agent.status()["last_sync"]["result"] == "ok"
    # They went through nginx, not around it.
    access = (front.nginx.workdir / "access.log").read_text()
    assert "POST /api/v1/ingest" in access


def test_agent_without_the_ca_is_refused_and_keeps_its_readings(
    front: Front, tmp_path: Path
) -> None:
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url=front.url,
        token=front.hub.tokens["gw1"],
    )
    with stopping(broker, agent):
        agent.start()
        _publish(broker.port, "factory/tls/m1/untrusted", [1.0, 2.0])
        wait_for(
            "a failed sync",
            lambda: "CERTIFICATE_VERIFY_FAILED" in str(agent.status()),
            timeout=30,
        )
        assert agent.status()["backlog"] == 2
    assert front.count("tls/m1/untrusted") == 0


def test_mtls_front_takes_the_agent_with_its_client_certificate(
    front: Front, tmp_path: Path
) -> None:
    nginx = start_front(tmp_path / "nginx-mtls", front.certs, front.hub.port, mtls=True)
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-02",
        mqtt_port=broker.port,
        hub_url=f"https://localhost:{nginx.port}",
        token=front.hub.tokens["gw2"],
        settings={
            "hub": {
                "ca_file": str(front.certs.ca_file),
                "client_cert": str(front.certs.client_cert),
                "client_key": str(front.certs.client_key),
            }
        },
    )
    with stopping(nginx, broker, agent):
        # Without a client certificate the front refuses before the hub is asked.
        anonymous = httpx.get(
            f"https://localhost:{nginx.port}/health/live", verify=front.tls(), timeout=10
        )
        assert anonymous.status_code == 400
        agent.start()
        _publish(broker.port, "factory/mtls/m1/temp", [1.0, 2.0, 3.0])
        wait_for("3 readings at the hub", lambda: front.count("mtls/m1/temp") == 3, timeout=30)


# -- what stops a bare hub does not pass the front ----------------------------------------


def test_malformed_chunk_size_is_answered_by_the_front(front: Front) -> None:
    pid = front.hub.proc.pid
    for path in ("/api/v1/ingest", "/health/live", "/nowhere"):
        conn = TlsConn(front.nginx.port, front.tls())
        conn.send(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n".encode()
        )
        assert status_of(conn.read_response()) == 400
        conn.close()
    assert front.hub_alive(pid)


def _stream(conn: TlsConn, head: bytes, chunk: bytes, budget: int, frame: bool) -> int:
    """Send ``head`` then ``chunk`` repeatedly until the server answers or closes, or
    ``budget`` bytes went out. Returns the body bytes sent."""
    conn.send(head)
    sent = 0
    piece = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if frame else chunk
    while sent < budget:
        try:
            conn.send(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
        if conn.poll_response() or conn.eof:
            break
    return sent


@pytest.mark.parametrize("who", [None, "gw1"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_500_mb_is_cut_off_early(front: Front, framing: str, who: str | None) -> None:
    pid = front.hub.proc.pid
    rss_before = front.rss()
    conn = TlsConn(front.nginx.port, front.tls())
    size = 500 * MB
    framing_header = (
        f"Content-Length: {size}" if framing == "content-length" else "Transfer-Encoding: chunked"
    )
    auth = f"Authorization: Bearer {front.hub.tokens[who]}\r\n" if who else ""
    head = (
        f"POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"{auth}{framing_header}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    # Bounded: at most 64 MB go out, whatever the front does, and no more than 60 s.
    sent = _stream(conn, head, b"x" * MB, 64 * MB, framing == "chunked")
    response = conn.read_response(deadline_s=max(1.0, 60 - sent / MB))
    conn.close()
    assert time.monotonic() - started < 120
    body = response.partition(b"\r\n\r\n")[2]
    limit = HubSettings().max_body_bytes
    if who is None:
        # No credentials: refused on the headers, whatever the size or framing.
        assert status_of(response) == 401, response[:300]
        assert json.loads(body)["error"]["code"] == "unauthorized"
        assert sent <= 4 * MB
    else:
        assert status_of(response) == 413, response[:300]
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        # A declared 500 MB is refused on its headers; a chunked one once it passes 16 MiB
        # (plus what the socket buffers held).
        assert sent <= (4 * MB if framing == "content-length" else limit + 32 * MB)
    assert front.hub_alive(pid)
    assert front.rss() - rss_before < 64 * MB


def test_body_shorter_than_its_content_length_is_not_stored(front: Front) -> None:
    pid = front.hub.proc.pid
    body = encode_batch(
        Batch(gateway_id="gw-01", readings=[WireReading(9001, "cut/m1/temp", 1.7e9, 1.0)]),
        compress=False,
    )
    conn = TlsConn(front.nginx.port, front.tls())
    conn.send(
        (
            "POST /api/v1/ingest HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {front.hub.tokens['gw1']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n"
        ).encode()
        + body
    )
    conn.half_close()
    response = conn.read_response()
    conn.close()
    # nginx gives up on the body (it logs "client prematurely closed connection") and never
    # forwards the request: no answer at all, or a 4xx, never a 200.
    status = status_of(response)
    assert status is None or 400 <= status < 500, response[:300]
    assert front.count("cut/m1/temp") == 0
    assert "prematurely closed" in front.nginx.error_log()
    assert front.hub_alive(pid)


def test_idle_connections_are_closed_by_the_front(front: Front) -> None:
    conn = TlsConn(front.nginx.port, front.tls(), timeout=60)
    started = time.monotonic()
    # No request at all: client_header_timeout (10 s) closes it.
    assert conn.read_response(deadline_s=45) == b""
    assert conn.eof
    assert time.monotonic() - started < 45
    conn.close()


def test_bare_hub_still_dies_on_a_malformed_chunk(tmp_path: Path) -> None:
    """Why the front is required (docs/operations.md): the pinned Robyn aborts the process on
    this request. When this test fails, Robyn has been fixed: revise the docs, keep the front."""
    hub = start_hub(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s:
            s.sendall(
                b"POST /health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"ZZZ\r\n{}\r\n0\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                s.recv(1024)
        assert hub.proc.wait(timeout=30) != 0
    finally:
        if hub.proc.poll() is None:
            hub.stop()


# -- the console behind the front ---------------------------------------------------------


def test_console_sign_in_and_a_write_through_the_front_on_its_own_port(front: Front) -> None:
    """The front listens on a port of its own (not 443): the Origin a browser sends names
    that port, so the hub must be told the Host with it, or its CSRF check refuses all."""
    origin = front.url
    assert not origin.endswith(":443")
    browser = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    with front.client() as c:
        signed_in = c.post("/login", data={"token": front.hub.tokens["admin"]}, headers=browser)
        assert signed_in.status_code == 303, signed_in.text[:300]
        assert signed_in.headers["location"] == "/"
        page = c.get("/").raise_for_status().text
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
        assert found is not None
        created = c.post(
            "/api/v1/factories",
            json={"name": "front-port-works", "location": "hall 9"},
            headers={**browser, "X-CSRF-Token": found.group(1)},
        )
        assert created.status_code == 201, created.text[:300]
        assert created.json()["data"]["name"] == "front-port-works"


# -- bodies without credentials, and how many large bodies the hub holds at once -----------


def _vm_hwm_mb(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.fixture
def fresh_front(tmp_path: Path) -> Iterator[Front]:
    """A hub of its own, so its peak memory is this test's alone."""
    certs = make_certs(tmp_path / "tls")
    (tmp_path / "hub").mkdir()
    hub = start_hub(tmp_path / "hub")
    hub.tokens = {"gw1": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")}
    nginx = start_front(tmp_path / "nginx", certs, hub.port)
    try:
        yield Front(hub, nginx, certs)
    finally:
        nginx.stop()
        assert hub.stop() == 0


def _flood(front: Front, headers: dict[str, str], count: int = 64) -> list[httpx.Response]:
    """``count`` POSTs of 15 MiB to /api/v1/ingest at once, each on its own connection."""
    body = b"x" * (15 * MB)

    def one(_: int) -> httpx.Response:
        with front.client() as c:
            return c.post("/api/v1/ingest", content=body, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _hub_answers(front: Front, status: int) -> float:
    """How many ingest requests the hub itself answered with ``status``."""
    text = httpx.get(f"{front.hub.url}/metrics", timeout=10).text
    labels = f'method="POST",route="/api/v1/ingest",status="{status}"'
    found = re.search(rf"^edge_hub_http_requests_total\{{{labels}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_bodies_without_credentials_are_refused_by_the_front(fresh_front: Front) -> None:
    front = fresh_front
    pid = front.hub.proc.pid
    before = front.rss()
    answers = _flood(front, {"Content-Type": "application/json"})
    assert {r.status_code for r in answers} == {401}
    assert {r.json()["error"]["code"] for r in answers} == {"unauthorized"}
    # nginx answered them all itself: the hub never saw one, and its memory never moved.
    assert _hub_answers(front, 401) == 0
    assert _vm_hwm_mb(pid) - before // MB < 16
    # Chunked, or a write elsewhere under /api/: the same.
    conn = TlsConn(front.nginx.port, front.tls())
    conn.send(
        b"PUT /api/v1/sensors/1/thresholds HTTP/1.1\r\nHost: localhost\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    )
    assert status_of(conn.read_response()) == 401
    conn.close()
    # Requests without a body, and bodies with a token, still reach the hub.
    with front.client() as c:
        assert c.get("/api/v1/gateways").status_code == 401
    with front.client("gw1") as c:
        assert c.post("/api/v1/ingest", content=b"{}").status_code == 422
    assert front.hub_alive(pid)


def test_the_hub_holds_few_large_bodies_at_once(fresh_front: Front) -> None:
    """A forged session cookie gets a body past the front's credential check; the hub still
    reads it whole before it can refuse it. The front hands it at most a few such bodies at a
    time (max_conns on its upstream for large bodies), the rest get 503 and Retry-After."""
    front = fresh_front
    pid = front.hub.proc.pid
    before = front.rss()
    answers = _flood(front, {"Content-Type": "application/json", "Cookie": "edge_session=forged"})
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {401, 503} and 401 in statuses and 503 in statuses, statuses
    assert _hub_answers(front, 401) == statuses.count(401)
    for r in answers:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "unavailable"
            assert r.headers["Retry-After"] == "1"
    # 64 bodies of 15 MiB at once took the hub to 680-840 MB without the bound. With it, 4 at a
    # time, each held a few times over (Robyn's buffer, the Python bytes, the allocator's
    # slack): 120-200 MB measured, so the line sits at 5 copies of 4 bodies, under half of that.
    assert _vm_hwm_mb(pid) - before // MB < 4 * 15 * 5
    # A gateway's large batch (over 1 MB, so through the bounded upstream) still goes in.
    readings = [WireReading(i, "big/m1/temp", 1.7e9 + i, float(i)) for i in range(1, 30_001)]
    body = encode_batch(Batch(gateway_id="gw-01", readings=readings), compress=False)
    assert len(body) > 1_048_576
    with front.client("gw1") as c:
        stored = c.post(
            "/api/v1/ingest", content=body, headers={"Content-Type": "application/json"}
        )
    assert stored.status_code == 200, stored.text[:300]
    assert stored.json()["data"]["accepted"] == 30_000
    assert front.hub_alive(pid)

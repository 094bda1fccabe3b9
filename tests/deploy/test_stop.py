"""Stopping the central services the way systemd does (SIGTERM), with work in flight.

Robyn does not stop on SIGTERM by itself (Robyn issue #1324); edge-hub installs its own
handler (hub.cli.install_stop_handlers). These tests hold it to what systemd and the agents
need: requests inside a handler get their answer, the process and its children exit 0, the
port is free for the next start, and the database is whole with its WAL checkpointed.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devtools.stack import Detector, Hub
from hub.cli import DRAIN_S, port_problem
from shared.wire import Batch, WireReading, encode_batch

BATCHES = 6
PER_BATCH = 40_000  # big enough that the batches queue for SQLite's write lock for a while


def bodies() -> list[bytes]:
    return [
        encode_batch(
            Batch(
                gateway_id="gw-01",
                readings=[
                    WireReading(seq, f"line1/m{b}/temp", 1.7e9 + seq, float(seq % 97))
                    for seq in range(b * PER_BATCH + 1, (b + 1) * PER_BATCH + 1)
                ],
            )
        )
        for b in range(BATCHES)
    ]


def post_all(url: str, token: str, payloads: list[bytes]) -> list[tuple[int | str, float]]:
    """POST every payload concurrently; (status or error name, completion time) for each."""
    results: list[tuple[int | str, float]] = [("not sent", 0.0)] * len(payloads)

    def one(i: int) -> None:
        try:
            r = httpx.post(
                f"{url}/api/v1/ingest",
                content=payloads[i],
                headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
                timeout=60,
            )
            results[i] = (r.status_code, time.monotonic())
        except httpx.HTTPError as exc:
            results[i] = (type(exc).__name__, time.monotonic())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return results


def stored_per_machine(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.key, count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id "
            "GROUP BY s.key"
        ).fetchall()
    return {str(k).split("/")[1]: int(n) for k, n in rows}


def test_hub_sigterm_with_requests_in_flight(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    token = hub.add_gateway("gw-01")
    payloads = bodies()
    hub.start()
    try:
        assert hub.proc.popen is not None
        process = psutil.Process(hub.proc.popen.pid)
        family = [process, *process.children(recursive=True)]

        results: list[tuple[int | str, float]] = []
        sender = threading.Thread(target=lambda: results.extend(post_all(hub.url, token, payloads)))
        sender.start()
        # Wait until the hub is busy with them: the first batch is committed and the rest
        # queue behind SQLite's write lock inside their handlers.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stored_per_machine(hub.db):
            time.sleep(0.02)
        signalled = time.monotonic()
        hub.proc.signal(signal.SIGTERM)
        assert hub.proc.popen.wait(DRAIN_S + 5) == 0, hub.proc.log_tail()
        sender.join(60)
        _, alive = psutil.wait_procs(family, timeout=5)
        assert alive == []
    finally:
        hub.stop()

    statuses = [status for status, _ in results]
    assert len(statuses) == BATCHES
    assert all(s == 200 or isinstance(s, str) for s in statuses), statuses  # never a 5xx
    answered_late = [s for s, done in results if s == 200 and done > signalled]
    assert answered_late, f"no request was still in flight at SIGTERM: {results}"

    # The port is free for the next start at once.
    assert port_problem("127.0.0.1", hub.port) is None

    # Whole database, WAL checkpointed into it; each batch all or nothing, and every batch
    # answered 200 is there.
    wal = hub.db.with_name(hub.db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = stored_per_machine(hub.db)
    assert set(stored.values()) <= {PER_BATCH}, stored
    for b, (status, _) in enumerate(results):
        if status == 200:
            assert stored.get(f"m{b}") == PER_BATCH, (b, stored)

    # What was cut off is simply sent again after a restart (as the agent does): all of it,
    # exactly once.
    hub.start()
    try:
        again = post_all(hub.url, token, payloads)
        assert [s for s, _ in again] == [200] * BATCHES
    finally:
        assert hub.proc.stop() == 0
    assert stored_per_machine(hub.db) == {f"m{b}": PER_BATCH for b in range(BATCHES)}


def test_detector_sigterm_finishes_an_open_request(tmp_path: Path) -> None:
    detector = Detector(tmp_path).start()
    try:
        body = b'{"values": [1.0, 2.0, 1.5, 2.5, 40.0, 1.0], "threshold": 1.5}'
        with socket.create_connection(("127.0.0.1", detector.port), timeout=10) as conn:
            # Half a request is on the wire when SIGTERM arrives; graceful shutdown must
            # still read the rest and answer it.
            conn.sendall(
                b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.2)
            detector.proc.signal(signal.SIGTERM)
            time.sleep(0.2)
            assert detector.proc.running  # waiting for the open request
            conn.sendall(body[10:])
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response
        assert b'"z_score"' in response
        assert detector.proc.popen is not None
        assert detector.proc.popen.wait(10) == 0
    finally:
        detector.stop()
    assert port_problem("127.0.0.1", detector.port) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_services_exit_0(tmp_path: Path, sig: signal.Signals) -> None:
    detector = Detector(tmp_path).start()
    hub = Hub(tmp_path, anomaly_url=detector.url).start()
    for proc, port in ((hub.proc, hub.port), (detector.proc, detector.port)):
        proc.signal(sig)
        assert proc.popen is not None
        assert proc.popen.wait(10) == 0, proc.log_tail()
        assert port_problem("127.0.0.1", port) is None
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"{hub.url}/health/live", timeout=2)

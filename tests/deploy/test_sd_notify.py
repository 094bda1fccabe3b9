"""The real edge-agent under a systemd-like supervisor: READY=1, WATCHDOG=1 pings, STOPPING=1.

systemd talks to a Type=notify service through the unix datagram socket named in
NOTIFY_SOCKET, and asks for watchdog pings with WATCHDOG_USEC/WATCHDOG_PID. The test binds
such a socket itself and starts the agent the way systemd does (its own pid in WATCHDOG_PID).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.service import watchdog_interval
from devtools.stack import PY, Agent, Broker, mosquitto_path

if mosquitto_path() is None:  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail("mosquitto is required: apt-get install mosquitto", pytrace=False)

WATCHDOG_USEC = 200_000  # pings every 0.1 s, so a few arrive quickly


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def messages(self, until: str, timeout: float) -> list[str]:
        """Every datagram received until one contains ``until`` (or the timeout)."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
            if until in got[-1]:
                break
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    # A short path: unix socket names are limited to 107 bytes and tmp_path can be long.
    sock = NotifySocket(Path(f"/tmp/fe-notify-{time.monotonic_ns()}.sock"))
    yield sock
    sock.close()
    sock.path.unlink(missing_ok=True)


def test_ready_watchdog_and_stopping(tmp_path: Path, notify: NotifySocket) -> None:
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url="http://127.0.0.1:9",  # the hub is not needed to subscribe and buffer
        token="feg_unused",
    )
    # exec keeps the shell's pid, so WATCHDOG_PID=$$ names the agent, as systemd's would.
    agent.proc.argv = [
        "sh",
        "-c",
        f"WATCHDOG_PID=$$ exec {shlex.join([PY, '-m', 'agent', 'run'])} "
        f"--config {shlex.quote(str(agent.config))}",
    ]
    agent.proc.env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    try:
        agent.start(wait_subscribed=False)
        before_ready = notify.messages(until="READY=1", timeout=30)
        assert any("READY=1" in m for m in before_ready), agent.proc.log_tail()
        # READY means subscribed with the buffer open: status says so at once.
        assert agent.status()["mqtt"]["connected"]

        pings = [m for m in notify.messages(until="never", timeout=1.0) if m == "WATCHDOG=1"]
        assert len(pings) >= 3, pings

        agent.proc.signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for m in notify.messages(until="STOPPING=1", timeout=15))
        assert agent.proc.popen is not None
        assert agent.proc.popen.wait(15) == 0
    finally:
        agent.stop()
        broker.stop()


def test_no_watchdog_pings_unless_asked(tmp_path: Path, notify: NotifySocket) -> None:
    broker = Broker(tmp_path).start()
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url="http://127.0.0.1:9",
        token="feg_unused",
    )
    agent.proc.env = {"NOTIFY_SOCKET": str(notify.path)}
    try:
        agent.start(wait_subscribed=False)
        assert any("READY=1" in m for m in notify.messages(until="READY=1", timeout=30))
        assert "WATCHDOG=1" not in notify.messages(until="never", timeout=0.5)
    finally:
        agent.stop()
        broker.stop()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("", "", None),
        ("0", "", None),
        ("abc", "", None),
        ("30000000", "", 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "1", None),  # meant for another process
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str, expected: float | None
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert watchdog_interval() == expected

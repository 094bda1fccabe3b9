"""``edge-agent drain`` against a real hub: empties the buffer, gives up clearly, and leaves a
running agent service to do the syncing itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agent.buffer import Buffer, Reading
from devtools.stack import REPO, Agent, Broker, Hub, free_port, stopping, wait_for
from tests.agent.conftest import Publisher


def _config(workdir: Path, hub_url: str, token: str) -> Path:
    path = workdir / "drain.toml"
    path.write_text(
        f'gateway_id = "gw-drain"\n'
        f'[buffer]\npath = "{workdir / "buffer.db"}"\n'
        f'[hub]\nurl = "{hub_url}"\ntoken = "{token}"\n'
        "batch_max_readings = 500\nbackoff_max_s = 0.5\n"
        '[metrics]\nlisten = ""\n'
    )
    return path


def _fill(workdir: Path, n: int) -> None:
    buffer = Buffer(workdir / "buffer.db")
    now = time.time()
    try:
        buffer.append([Reading("l1/m1/temp", now - n + i, float(i), "C", now) for i in range(n)])
    finally:
        buffer.close()


def _drain(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "drain", "--config", str(config), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _backlog(workdir: Path) -> int:
    buffer = Buffer(workdir / "buffer.db")
    try:
        return buffer.backlog
    finally:
        buffer.close()


def test_drain_empties_the_buffer_into_the_hub(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    token = hub.add_gateway("gw-drain")
    _fill(tmp_path, 3000)
    with stopping(hub.start()):
        out = _drain(_config(tmp_path, hub.url, token))
        assert out.returncode == 0, out.stderr
        assert "drained: 3000 readings" in out.stderr
        assert hub.counts_by_sensor() == {"l1/m1/temp": 3000}
    assert _backlog(tmp_path) == 0


def test_drain_gives_up_when_the_hub_is_unreachable(tmp_path: Path) -> None:
    _fill(tmp_path, 100)
    nowhere = f"http://127.0.0.1:{free_port()}"
    out = _drain(_config(tmp_path, nowhere, "feg_x"), "--timeout", "2", timeout=60)
    assert out.returncode == 1
    assert "edge-agent drain: no progress for 2s" in out.stderr
    assert "ConnectError" in out.stderr  # the reason, not just "failed"
    assert _backlog(tmp_path) == 100  # nothing lost


def test_drain_watches_a_running_agent_instead_of_syncing_twice(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    hub = Hub(tmp_path, port=free_port())
    token = hub.add_gateway("gw-drain")
    # The hub is not up yet: the agent piles up a backlog it cannot send.
    agent = Agent(
        tmp_path,
        gateway_id="gw-drain",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token,
    )
    with stopping(broker, hub, agent):
        agent.start()
        pub = Publisher(broker.port)
        try:
            for i in range(50):
                pub.publish("factory/l1/m1/temp", {"value": i})
        finally:
            pub.close()
        wait_for("the backlog", lambda: agent.status()["backlog"] == 50)
        drain = subprocess.Popen(
            [sys.executable, "-m", "agent", "drain", "--config", str(agent.config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Only once drain has read the backlog (50) may the hub come up: a hub that is
            # up first lets the agent sync everything before drain has seen any of it.
            assert drain.stderr is not None
            seen = ""
            while "watching" not in seen and drain.poll() is None:
                seen += drain.stderr.readline()
            hub.start()
            _, rest = drain.communicate(timeout=60)
            err = seen + rest
        finally:
            if drain.poll() is None:
                drain.kill()
        assert drain.returncode == 0, err
        assert f"edge-agent is running (pid {agent.proc.popen.pid})" in err  # type: ignore[union-attr]
        assert "drained: 50 readings" in err
        assert hub.counts_by_sensor() == {"l1/m1/temp": 50}

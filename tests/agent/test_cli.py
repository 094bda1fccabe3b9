"""The edge-agent command: run as a real process, status --json, check-config, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import AgentConfig
from agent.service import open_buffer
from devtools.stack import Broker
from shared.config import load_settings
from shared.wire import decode_batch

from .conftest import Publisher

REPO = Path(__file__).resolve().parents[2]


class FakeHub:
    """A stdlib HTTP server that stores what /api/v1/ingest receives, keyed by seq."""

    def __init__(self) -> None:
        self.readings: dict[int, tuple[str, float]] = {}
        self.status = 200
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hub.status != 200:
                    self.send_response(hub.status)
                    self.end_headers()
                    return
                batch = decode_batch(body, self.headers.get("Content-Encoding"))
                dup = 0
                for r in batch.readings:
                    dup += r.seq in hub.readings
                    hub.readings[r.seq] = (r.key, r.value)
                out = json.dumps(
                    {"data": {"accepted": len(batch.readings) - dup, "duplicates": dup}, "meta": {}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    h = FakeHub()
    yield h
    h.close()


def write_config(tmp_path: Path, port: int, hub_url: str, extra: str = "") -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'gateway_id = "gw-cli"\n'
        f"[mqtt]\nport = {port}\nbatch_linger_ms = 5\n"
        f'[buffer]\npath = "{tmp_path / "buffer.db"}"\nmax_bytes = 50_000_000\n'
        f'[hub]\nurl = "{hub_url}"\ntoken = "t"\ninterval_s = 0.1\nbackoff_max_s = 0.5\n' + extra
    )
    return cfg


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=30
    )


def status(cfg: Path) -> dict[str, Any]:
    out = cli("status", "--json", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (AssertionError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    raise TimeoutError


def test_run_status_and_clean_stop(
    tmp_path: Path, broker: Broker, publisher: Publisher, hub: FakeHub
) -> None:
    hub.status = 503  # hold the data at the edge first
    cfg = write_config(tmp_path, broker.port, hub.url)
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(cfg)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: status(cfg)["mqtt"]["connected"])
        for i in range(20):
            publisher.publish("factory/l1/m1/temp", i)
        publisher.publish("factory/l1/m1/temp", b"garbage")
        wait_for(lambda: status(cfg)["backlog"] == 20)
        st = status(cfg)
        assert st["dead_letters"] == 1 and st["dropped"] == 0
        assert st["oldest_unsynced_age_s"] >= 0
        assert st["last_sync"]["result"].startswith("error: HTTP 503")
        assert st["buffer"] == {
            "path": str(tmp_path / "buffer.db"),
            "bytes": st["buffer"]["bytes"],
            "max_bytes": 50_000_000,
            "when_full": "drop_oldest",
        }
        hub.status = 200
        wait_for(lambda: status(cfg)["backlog"] == 0)
        assert sorted(v for _, v in hub.readings.values()) == [float(i) for i in range(20)]
        st = status(cfg)
        assert st["last_sync"]["result"] == "ok" and st["oldest_unsynced_age_s"] is None
        human = cli("status", "--config", str(cfg))
        assert human.returncode == 0 and "backlog" in human.stdout and "connected" in human.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "agent.log").read_text()
    assert "edge-agent started gateway_id=gw-cli buffer=" in text
    assert "subscribed" in text
    assert status(cfg)["mqtt"]["connected"] is False


def test_kill_9_then_restart_loses_nothing(
    tmp_path: Path, broker: Broker, publisher: Publisher, hub: FakeHub
) -> None:
    cfg = write_config(tmp_path, broker.port, hub.url)
    argv = [sys.executable, "-m", "agent", "run", "--config", str(cfg)]
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: status(cfg)["mqtt"]["connected"])
        infos = [publisher.client.publish("factory/l1/m1/temp", str(i), qos=1) for i in range(3000)]
        time.sleep(0.05)
        proc.kill()  # somewhere mid-stream
        proc.wait(10)
        for info in infos:
            info.wait_for_publish(10)
        assert status(cfg)["mqtt"]["connected"] is False  # pid check beats the stale flag
        proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.DEVNULL)
        wait_for(lambda: len({v for _, v in hub.readings.values()}) == 3000, timeout=30)
        wait_for(lambda: status(cfg)["backlog"] == 0)
    finally:
        proc.terminate()
        proc.wait(10)
    values = sorted(v for _, v in hub.readings.values())
    # Every value arrived; a value twice is only possible from the commit-to-ack window.
    assert set(values) == {float(i) for i in range(3000)}
    assert len(values) - 3000 <= 1000


def test_check_config_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, 1883, "http://127.0.0.1:9")
    assert main(["check-config", "--config", str(cfg)]) == 0
    assert "gateway_id=gw-cli" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('gateway_id = "x"\n[mqtt]\nprot = 1\n')
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "mqtt.prot: unknown key" in capsys.readouterr().err
    assert main(["status", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["status", "--json", "--config", str(cfg)]) == 1  # no buffer yet
    assert "no buffer" in capsys.readouterr().err


@pytest.mark.parametrize(("durability", "synchronous"), [(None, 1), ("process", 1), ("power", 2)])
def test_buffer_durability_sets_the_writers_sync_mode(
    tmp_path: Path, durability: str | None, synchronous: int
) -> None:
    cfg = write_config(tmp_path, 1883, "http://127.0.0.1:9")
    if durability is not None:
        set_buffer_key(cfg, f'durability = "{durability}"')
    buffer = open_buffer(load_settings(AgentConfig, cfg))
    try:
        # 1 = NORMAL (survives a crash of the agent), 2 = FULL (an fsync per commit).
        assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    finally:
        buffer.close()


def test_check_config_refuses_an_unknown_durability(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, 1883, "http://127.0.0.1:9")
    set_buffer_key(cfg, 'durability = "disk"')
    assert main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "buffer.durability" in err and "'process' or 'power'" in err


def set_buffer_key(cfg: Path, line: str) -> None:
    text = cfg.read_text()
    cfg.write_text(text.replace("[buffer]\n", f"[buffer]\n{line}\n", 1))


@pytest.mark.parametrize("args", [[], ["run"], ["status"], ["check-config"]])
def test_help_everywhere(args: list[str]) -> None:
    out = cli(*args, "--help")
    assert out.returncode == 0
    assert "--config" in out.stdout or args == []


def test_sim_publishes_counted_summary(tmp_path: Path, broker: Broker) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.sim",
            "--port",
            str(broker.port),
            "--count",
            "300",
            "--rate",
            "0",
            "--malformed-share",
            "0.2",
            "--seed",
            "7",
            "--lines",
            "1",
            "--machines",
            "2",
            "--sensors",
            "3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["published"] == 300 and summary["malformed"] > 0
    assert sum(summary["per_sensor"].values()) == summary["valid"] >= 300 - summary["malformed"]
    assert set(summary["per_sensor"]) <= {
        f"line1/machine{m}/{s}" for m in (1, 2) for s in ("temp", "pressure", "vibration")
    }

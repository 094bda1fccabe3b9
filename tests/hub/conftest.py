"""Fixtures for hub tests: a real ``edge-hub serve`` subprocess on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def hub_command() -> list[str]:
    script = Path(sys.executable).parent / "edge-hub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_HUB_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, port: int, **extra: object) -> Path:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f'database = "sqlite:///{directory / "data" / "hub.db"}"',
        'log_level = "warning"',
    ]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items()]
    path = directory / "hub.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(
    config: Path | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [*hub_command(), *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(
        cmd, env=clean_env(), cwd=cwd or ROOT, capture_output=True, text=True, timeout=60
    )


def token(config: Path, *args: str) -> str:
    result = run_cli(config, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class HubProcess:
    config: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=15)


def start_hub(directory: Path, **extra: object) -> HubProcess:
    port = free_port()
    config = write_config(directory, port, **extra)
    log = directory / "hub.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*hub_command(), "serve", "--config", str(config)],
            env=clean_env(),
            cwd=directory,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    hub = HubProcess(config, port, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edge-hub exited {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{hub.url}/health/ready", timeout=1).status_code == 200:
                return hub
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    hub.stop()
    raise RuntimeError(f"edge-hub did not become ready: {log.read_text()}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    directory = tmp_path_factory.mktemp("hub")
    # Tokens are made while the hub runs: the CLI works on a live database.
    server = start_hub(directory, max_body_bytes=1_000_000)
    config = server.config
    server.tokens = {
        "gw1": token(config, "gateway", "add", "gw-01", "--factory", "acme"),
        "gw2": token(config, "gateway", "add", "gw-02", "--factory", "acme"),
        "gw3": token(config, "gateway", "add", "gw-03", "--factory", "globex"),
        "read": token(config, "token", "add", "--role", "read"),
        "admin": token(config, "token", "add", "--role", "admin"),
    }
    yield server
    assert server.stop() == 0

"""edge-hub CLI as a subprocess: tokens alone on stdout, exit codes, --help everywhere."""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from hub.auth import hash_token
from tests.hub.conftest import clean_env, free_port, hub_command, run_cli, start_hub, write_config

TOKEN = {
    "gateway": re.compile(r"^feg_[A-Za-z0-9_-]{43}\n$"),
    "read": re.compile(r"^fer_[A-Za-z0-9_-]{43}\n$"),
    "admin": re.compile(r"^fea_[A-Za-z0-9_-]{43}\n$"),
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, free_port())


def db(config: Path) -> Path:
    return config.parent / "data" / "hub.db"


def test_gateway_add_prints_only_a_token(config: Path) -> None:
    result = run_cli(config, "gateway", "add", "gw-01", "--factory", "acme")
    assert result.returncode == 0, result.stderr
    assert TOKEN["gateway"].match(result.stdout)
    assert db(config).exists()
    with sqlite3.connect(db(config)) as conn:
        hashes = [r[0] for r in conn.execute("SELECT hash FROM tokens")]
    assert hashes == [hash_token(result.stdout.strip())]


def test_gateway_add_twice_is_an_error_unless_rotate(config: Path) -> None:
    first = run_cli(config, "gateway", "add", "gw-01", "--factory", "acme")
    again = run_cli(config, "gateway", "add", "gw-01", "--factory", "acme")
    assert again.returncode == 1
    assert again.stdout == ""
    assert "already exists" in again.stderr and "--rotate" in again.stderr
    rotated = run_cli(config, "gateway", "add", "gw-01", "--factory", "acme", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert TOKEN["gateway"].match(rotated.stdout)
    assert rotated.stdout != first.stdout
    moved = run_cli(config, "gateway", "add", "gw-01", "--factory", "other", "--rotate")
    assert moved.returncode == 1 and "belongs to factory" in moved.stderr


@pytest.mark.parametrize("bad_id", ["", "has space", "a/b", "x" * 129])
def test_gateway_add_rejects_bad_ids(config: Path, bad_id: str) -> None:
    result = run_cli(config, "gateway", "add", bad_id, "--factory", "acme")
    assert result.returncode == 2
    assert result.stdout == ""


@pytest.mark.parametrize("role", ["read", "admin"])
def test_token_add(config: Path, role: str) -> None:
    result = run_cli(config, "token", "add", "--role", role)
    assert result.returncode == 0, result.stderr
    assert TOKEN[role].match(result.stdout)


def test_token_add_rejects_gateway_role(config: Path) -> None:
    result = run_cli(config, "token", "add", "--role", "gateway")
    assert result.returncode == 2
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [[], ["serve"], ["gateway"], ["gateway", "add"], ["token"], ["token", "add"], ["check-config"]],
)
def test_help_everywhere(args: list[str]) -> None:
    result = subprocess.run(
        [*hub_command(), *args, "--help"], env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: edge-hub")
    assert "--config" in result.stdout


def test_check_config(config: Path) -> None:
    result = run_cli(config, "check-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_config_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('listen = "nope"\nlistn = 1\n')
    for args in (["check-config"], ["token", "add", "--role", "read"], ["serve"]):
        result = run_cli(bad, *args)
        assert result.returncode == 2, args
        assert "listen" in result.stderr and "listn" in result.stderr
        assert result.stdout == ""
    missing = run_cli(tmp_path / "missing.toml", "check-config")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("listen = \n")
    assert run_cli(broken, "check-config").returncode == 2


def test_config_from_env_and_cwd(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    # ./hub.toml is found without --config
    result = subprocess.run(
        [*hub_command(), "token", "add", "--role", "read"],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert db(config).exists()
    other = tmp_path / "other"
    other.mkdir()
    moved = other / "x.toml"
    moved.write_text(config.read_text().replace("data/hub.db", "data/env.db"))
    result = subprocess.run(
        [*hub_command(), "token", "add", "--role", "read"],
        env=clean_env(EDGE_HUB_CONFIG=str(moved)),
        cwd=other,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "env.db").exists()


def test_serve_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = write_config(tmp_path, port)
        result = subprocess.run(
            [*hub_command(), "serve", "--config", str(config)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_serve_logs_listen_line_and_stops_on_signal(tmp_path: Path, sig: str) -> None:
    import signal
    import time

    hub = start_hub(tmp_path)
    hub.proc.send_signal(getattr(signal, sig))
    started = time.monotonic()
    assert hub.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert f"edge-hub listening on http://127.0.0.1:{hub.port}" in hub.log.read_text()

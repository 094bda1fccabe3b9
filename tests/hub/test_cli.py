"""edge-hub CLI as a subprocess: tokens alone on stdout, exit codes, --help everywhere."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from hub.auth import hash_token
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import (
    clean_env,
    free_port,
    hub_command,
    run_cli,
    start_hub,
    token,
    write_config,
)

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
    [
        [],
        ["serve"],
        ["gateway"],
        ["gateway", "add"],
        ["gateway", "list"],
        ["gateway", "revoke"],
        ["token"],
        ["token", "add"],
        ["token", "list"],
        ["token", "revoke"],
        ["check-config"],
    ],
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

    hub = start_hub(tmp_path)
    hub.proc.send_signal(getattr(signal, sig))
    # The bound is a hang detector, not a speed claim (shutdown time is not a bench target).
    assert hub.proc.wait(timeout=60) == 0
    assert f"edge-hub listening on http://127.0.0.1:{hub.port}" in hub.log.read_text()


def test_token_list_shows_ids_and_roles_never_tokens(config: Path) -> None:
    gw = token(config, "gateway", "add", "gw-01", "--factory", "acme")
    read = token(config, "token", "add", "--role", "read")
    admin = token(config, "token", "add", "--role", "admin")
    listed = run_cli(config, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["role"], r["gateway"], r["state"]) for r in rows] == [
        (1, "gateway", "gw-01", "active"),
        (2, "read", "-", "active"),
        (3, "admin", "-", "active"),
    ]
    table = run_cli(config, "token", "list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ID", "ROLE", "GATEWAY", "CREATED", "STATE"]
    for secret in (gw, read, admin):
        for out in (listed.stdout, table.stdout):
            assert secret not in out and hash_token(secret) not in out


def test_revoke_unknown_ids_exit_2(config: Path) -> None:
    for args in (["token", "revoke", "42"], ["gateway", "revoke", "gw-nope"]):
        result = run_cli(config, *args)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "no token with id 42" in result.stderr or "no gateway 'gw-nope'" in result.stderr
    not_a_number = run_cli(config, "token", "revoke", "abc")
    assert not_a_number.returncode == 2 and "invalid int value" in not_a_number.stderr


def test_revoke_takes_effect_on_a_running_hub(tmp_path: Path) -> None:
    hub = start_hub(tmp_path)
    try:
        cfg = hub.config
        gw = token(cfg, "gateway", "add", "gw-01", "--factory", "acme")
        read = token(cfg, "token", "add", "--role", "read")
        other_read = token(cfg, "token", "add", "--role", "read")
        body = encode_batch(
            Batch(gateway_id="gw-01", readings=[WireReading(1, "l/m/s", 1.7e9, 1.0, None)])
        )

        def ingest() -> int:
            return httpx.post(
                f"{hub.url}/api/v1/ingest",
                content=body,
                headers={"Authorization": f"Bearer {gw}", "Content-Encoding": "gzip"},
            ).status_code

        def gateways(tok: str) -> int:
            return httpx.get(
                f"{hub.url}/api/v1/gateways", headers={"Authorization": f"Bearer {tok}"}
            ).status_code

        assert ingest() == 200 and gateways(read) == 200

        rows = json.loads(token(cfg, "token", "list", "--json"))
        assert [r["role"] for r in rows] == ["gateway", "read", "read"]  # in creation order
        ids = {"gateway": rows[0]["id"], "read": rows[1]["id"]}
        revoked = run_cli(cfg, "token", "revoke", str(ids["read"]))
        assert revoked.returncode == 0, revoked.stderr
        assert gateways(read) == 401
        assert gateways(other_read) == 200

        result = run_cli(cfg, "gateway", "revoke", "gw-01")
        assert result.returncode == 0, result.stderr
        assert ingest() == 401
        listed = json.loads(token(cfg, "gateway", "list", "--json"))
        assert [(g["id"], g["factory"], g["state"]) for g in listed] == [
            ("gw-01", "acme", "revoked")
        ]
        assert listed[0]["last_seen"] != "-"  # it did sync once
        states = {r["id"]: r["state"] for r in json.loads(token(cfg, "token", "list", "--json"))}
        assert states[ids["gateway"]] == "revoked"

        # --rotate brings a revoked gateway back, with a new token only.
        new = token(cfg, "gateway", "add", "gw-01", "--factory", "acme", "--rotate")
        assert ingest() == 401
        gw = new
        assert ingest() == 200
    finally:
        assert hub.stop() == 0

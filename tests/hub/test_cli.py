"""edge-hub CLI as a subprocess: tokens alone on stdout, exit codes, --help everywhere."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
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
from tests.pg import PgServer

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


def test_check_config_masks_the_database_password_and_webhook_secrets(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        'database = "postgresql://edge:db-pw-4711@pg-a:5432/edge"\n'
        "[[webhooks]]\n"
        'url = "https://hooks:url-pw-0815@alerts.example/hook"\n'
        'secret = "hmac-key-2342"\n'
    )
    result = run_cli(config, "check-config")
    assert result.returncode == 0, result.stderr
    for secret in ("db-pw-4711", "url-pw-0815", "hmac-key-2342"):
        assert secret not in result.stdout + result.stderr
    assert "postgresql://edge:***@pg-a:5432/edge" in result.stdout
    assert "https://hooks:***@alerts.example/hook" in result.stdout
    assert "'secret': '***'" in result.stdout


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
    admin = token(config, "token", "add", "--role", "admin", "--name", "nightly export")
    listed = run_cli(config, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["name"], r["role"], r["gateway"], r["state"]) for r in rows] == [
        (1, None, "gateway", "gw-01", "active"),
        (2, None, "read", "-", "active"),
        (3, "nightly export", "admin", "-", "active"),
    ]
    table = run_cli(config, "token", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "GATEWAY", "FACTORIES", "CREATED", "STATE"]
    assert "nightly export" in lines[3]
    assert [r["factories"] for r in rows] == [[], [], []]  # none: every factory
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


def test_gateway_add_several_prints_id_token_lines(config: Path) -> None:
    result = run_cli(config, "gateway", "add", "gw-01", "gw-02", "gw-03", "--factory", "acme")
    assert result.returncode == 0, result.stderr
    lines = [line.split(" ") for line in result.stdout.splitlines()]
    assert [line[0] for line in lines] == ["gw-01", "gw-02", "gw-03"]
    for _, tok in lines:
        assert TOKEN["gateway"].match(tok + "\n")
    with sqlite3.connect(db(config)) as conn:
        hashes = {r[0] for r in conn.execute("SELECT hash FROM tokens")}
    assert hashes == {hash_token(tok) for _, tok in lines}


@pytest.mark.parametrize(
    ("ids", "code", "message"),
    [
        (["gw-ok", "bad id"], 2, "may hold only"),
        (["gw-ok", "gw:colon"], 2, "may hold only"),
        (["gw-ok", "gw-ok"], 2, "given twice"),
        (["gw-new", "gw-old"], 1, "already exists: gw-old"),
    ],
)
def test_gateway_add_several_is_all_or_nothing(
    config: Path, ids: list[str], code: int, message: str
) -> None:
    assert run_cli(config, "gateway", "add", "gw-old", "--factory", "acme").returncode == 0
    result = run_cli(config, "gateway", "add", *ids, "--factory", "acme")
    assert result.returncode == code
    assert message in result.stderr and result.stdout == ""
    with sqlite3.connect(db(config)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM gateways")]
    assert names == ["gw-old"]


def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    result = subprocess.run(
        [*hub_command(), "token", "add", "--role", "read", "--config", str(config)],
        env=clean_env(),
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0),
    )
    assert result.returncode == 0, result.stderr
    path = db(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # A database made by an older release with the umask's 0644 is tightened on open.
    path.chmod(0o644)
    hub = start_hub(tmp_path)
    try:
        token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")
        for name in ("hub.db", "hub.db-wal", "hub.db-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    finally:
        assert hub.stop() == 0


def test_migrate_command(tmp_path: Path, database_url: str) -> None:
    config = write_config(tmp_path, free_port(), database=database_url)
    first = run_cli(config, "migrate")
    assert first.returncode == 0, first.stderr
    assert "schema 0 ->" in first.stderr and first.stdout == ""
    again = run_cli(config, "migrate")
    assert again.returncode == 0 and "up to date" in again.stderr


def test_serve_on_postgresql_and_migrations_at_once(tmp_path: Path, pg_server: PgServer) -> None:
    """Two hubs start at once on one new PostgreSQL database: both migrate it (one waits for
    the other's lock, then finds nothing to do) and both serve."""
    url = pg_server.create_database()
    hubs: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            port = free_port()
            cfg = write_config(directory, port, database=url)
            proc = subprocess.Popen(
                [*hub_command(), "serve", "--config", str(cfg)],
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            hubs.append((port, proc))
        for port, proc in hubs:
            assert _wait_ready(port, proc), f"hub on {port} exited {proc.returncode}"
        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert versions == list(range(1, len(versions) + 1))
    finally:
        for _, proc in hubs:
            proc.terminate()
        for _, proc in hubs:
            assert proc.wait(timeout=30) == 0


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> bool:
    for _ in range(300):
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


T_RECENT = time.time() - 3600


def _ingest(url: str, tok: str, gateway_id: str, seqs: range) -> dict[str, int]:
    body = encode_batch(
        Batch(
            gateway_id=gateway_id,
            # Within the last hour: inside every retention window and ts limit.
            readings=[WireReading(s, "l1/m1/temp", T_RECENT + s, float(s), "C") for s in seqs],
        )
    )
    r = httpx.post(
        f"{url}/api/v1/ingest",
        content=body,
        headers={"Authorization": f"Bearer {tok}", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    data: dict[str, int] = r.json()["data"]
    return data


def test_copy_data_sqlite_to_postgresql_end_to_end(tmp_path: Path, pg_server: PgServer) -> None:
    """A SQLite hub's data moves to PostgreSQL with copy-data (twice: nothing doubles), and
    a hub on PostgreSQL then takes the same gateways' tokens and answers the same."""
    (tmp_path / "old").mkdir()
    old = start_hub(tmp_path / "old")
    try:
        lines = token(old.config, "gateway", "add", "gw-a", "gw-b", "--factory", "acme")
        gw = dict(line.split(" ") for line in lines.splitlines())
        read = token(old.config, "token", "add", "--role", "read")
        # A token limited to acme must stay limited on the new database, not see everything.
        token(old.config, "gateway", "add", "gw-c", "--factory", "other")
        acme = token(old.config, "token", "add", "--role", "read", "--factory", "acme")
        assert _ingest(old.url, gw["gw-a"], "gw-a", range(1, 301))["accepted"] == 300
        assert _ingest(old.url, gw["gw-b"], "gw-b", range(1, 51))["accepted"] == 50
        sensors_before = httpx.get(
            f"{old.url}/api/v1/sensors", headers={"Authorization": f"Bearer {read}"}
        ).json()["data"]
    finally:
        assert old.stop() == 0
    url = pg_server.create_database()
    for _ in range(2):
        copied = run_cli(old.config, "copy-data", "--to", url)
        assert copied.returncode == 0, copied.stderr
    assert "350 readings (0 new)" in copied.stderr
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    new = start_hub(new_dir, database=url)
    try:
        # The same tokens work; what was stored is not stored again, new data is.
        again = _ingest(new.url, gw["gw-a"], "gw-a", range(1, 301))
        assert (again["accepted"], again["duplicates"]) == (0, 300), (again, copied.stderr)
        assert _ingest(new.url, gw["gw-a"], "gw-a", range(301, 311))["accepted"] == 10
        assert _ingest(new.url, gw["gw-b"], "gw-b", range(40, 61))["accepted"] == 10
        # New rows get new ids after the copied ones (the sequences moved past them).
        assert TOKEN["read"].match(token(new.config, "token", "add", "--role", "read") + "\n")
        headers = {"Authorization": f"Bearer {read}"}
        sensors = httpx.get(f"{new.url}/api/v1/sensors", headers=headers).json()["data"]
        assert [s["id"] for s in sensors] == [s["id"] for s in sensors_before]
        stats = httpx.get(
            f"{new.url}/api/v1/sensors/{sensors[0]['id']}/stats", headers=headers
        ).json()["data"]
        assert stats["count"] == 300 + 10 + 60
        gateways = httpx.get(f"{new.url}/api/v1/gateways", headers=headers).json()["data"]
        assert [g["id"] for g in gateways] == ["gw-a", "gw-b", "gw-c"]
        limited = {"Authorization": f"Bearer {acme}"}
        gateways = httpx.get(f"{new.url}/api/v1/gateways", headers=limited).json()["data"]
        assert [g["id"] for g in gateways] == ["gw-a", "gw-b"]
    finally:
        assert new.stop() == 0

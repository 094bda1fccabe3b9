"""deploy/haproxy.cfg and deploy/patroni.yml, the files of a site that runs several hub hosts.

HAProxy runs for real: the shipped config with its hosts pointed at a real hub and at a port
where nothing listens. Its health check (GET /health/ready, 200) must mark the hub up and
the dead host down, and requests through it must reach the hub. patroni.yml is read as
YAML and held to what the docs promise: synchronous replication on, every key explained.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from devtools.stack import REPO, wait_for
from tests.hub.conftest import HubProcess, free_port, start_hub

DEPLOY = REPO / "deploy"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if not Path(HAPROXY).exists():  # pragma: no cover - `just test-deps` installs it
    pytest.fail("haproxy is required: apt-get install haproxy", pytrace=False)


def test_the_shipped_haproxy_config_is_valid() -> None:
    done = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _stats(sock_path: Path) -> dict[str, str]:
    """Each server's status (UP, DOWN, ...) from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "hub_hosts"}


@pytest.fixture
def balanced(tmp_path: Path) -> Iterator[tuple[str, Path, HubProcess]]:
    """HAProxy with the shipped config: hub-a a real hub, hub-b a port nobody listens on."""
    (tmp_path / "hub").mkdir()
    hub = start_hub(tmp_path / "hub")
    port, dead = free_port(), free_port()
    sock = tmp_path / "haproxy.sock"
    text = (DEPLOY / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{port}")
    text = re.sub(r"server hub-a \S+", f"server hub-a 127.0.0.1:{hub.port}", text)
    text = re.sub(r"server hub-b \S+", f"server hub-b 127.0.0.1:{dead}", text)
    # The test asks HAProxy for its view of the hosts; nothing else of the config changes.
    text = text.replace("global\n", f"global\n    stats socket {sock} mode 600 level admin\n", 1)
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    proc = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        yield f"http://127.0.0.1:{port}", sock, hub
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        hub.stop()


def test_haproxy_sends_requests_to_ready_hosts_only(
    balanced: tuple[str, Path, HubProcess],
) -> None:
    url, sock, hub = balanced
    wait_for("HAProxy's stats socket", sock.exists)
    # Marked by its own checks of /health/ready: the hub up, the dead host down.
    wait_for(
        "hub-a up and hub-b down",
        lambda: _stats(sock) == {"hub-a": "UP", "hub-b": "DOWN", "BACKEND": "UP"},
    )
    with httpx.Client(base_url=url, timeout=10) as c:
        answers = [c.get("/health/ready").status_code for _ in range(20)]
    assert answers == [200] * 20
    # The hub itself stops: HAProxy takes it out too, and says so with a 503 of its own.
    hub.stop()
    wait_for("hub-a down", lambda: _stats(sock).get("hub-a") == "DOWN")
    assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 503


def test_patroni_config_replicates_synchronously_and_explains_every_key() -> None:
    text = (DEPLOY / "patroni.yml").read_text()
    config = yaml.safe_load(text)
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["synchronous_mode_strict"] is False  # the choice docs/operations.md explains
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] == "on"
    assert "etcd3" in config and config["postgresql"]["bin_dir"] == "/usr/lib/postgresql/15/bin"
    # A primary that cannot reach its synchronous standby still stops (and so can rejoin).
    assert dcs["primary_stop_timeout"] > 0
    # Patroni's own sessions over localhost: its checks, and its timeline read when the
    # primary is gone (without which the standby never takes over).
    hba = config["postgresql"]["pg_hba"]
    assert "host all all 127.0.0.1/32 scram-sha-256" in hba
    assert "host replication replicator 127.0.0.1/32 scram-sha-256" in hba
    # Every key has a comment on its line or right above it (a list item's key counts as
    # explained by the comment above the list).
    lines = text.splitlines()
    bare = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not re.match(r"^[A-Za-z_]\w*:", stripped) or "#" in line:
            continue
        above = lines[i - 1].strip() if i else ""
        sibling = re.match(r"^[A-Za-z_]\w*:", above) and (
            len(lines[i - 1]) - len(lines[i - 1].lstrip()) == len(line) - len(line.lstrip())
        )
        if not above.startswith("#") and not sibling:
            bare.append(stripped)
    assert not bare, f"keys without a comment: {bare}"

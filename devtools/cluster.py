"""A hub cluster on one machine, each host in its own network namespace: etcd, two
PostgreSQL 15 nodes run by Patroni (the shipped deploy/patroni.yml with this network's
addresses), two hub hosts and HAProxy (the shipped deploy/haproxy.cfg). The namespaces hang off
one bridge in the caller's own namespace, which is the gateways' side: they reach the hubs only
through HAProxy. Used by the cluster test (tests/faults) and the `ha` bench rows.

Every name made here starts with PREFIX, so a run that crashed leaves nothing the next one
does not remove first (:func:`sweep`).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import yaml

from devtools.stack import PY, REPO, Proc, wait_for

PREFIX = "fecl-"
BRIDGE = f"{PREFIX}br"
NET = "10.77.0"
GATEWAY_SIDE = f"{NET}.1"  # the bridge's own address: the test, mosquitto and the agent
PATRONI_VENV = Path("/opt/factory-edge/patroni")  # made by devtools/test-deps.sh
PATRONI = PATRONI_VENV / "bin" / "patroni"
PATRONICTL = PATRONI_VENV / "bin" / "patronictl"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
DEPLOY = REPO / "deploy"

SUPERUSER_PASSWORD = "cluster-superuser"
HUB_PASSWORD = "cluster-edge"
HOSTS = {"etcd": 10, "pg-a": 11, "pg-b": 12, "hub-a": 21, "hub-b": 22, "lb": 30}


def missing_tools() -> list[str]:
    """What devtools/test-deps.sh installs and this cluster needs, where it is absent."""
    need = {
        "etcd (apt-get install etcd-server)": Path(ETCD),
        "haproxy (apt-get install haproxy)": Path(HAPROXY),
        f"patroni in {PATRONI_VENV} (devtools/test-deps.sh)": PATRONI,
        "PostgreSQL 15 (apt-get install postgresql)": Path("/usr/lib/postgresql/15/bin/postgres"),
        "ip (iproute2)": Path(shutil.which("ip") or "/usr/sbin/ip"),
    }
    return [name for name, path in need.items() if not path.exists()]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def netns(host: str) -> str:
    return f"{PREFIX}{host}"


def address(host: str) -> str:
    return f"{NET}.{HOSTS[host]}"


def _veth(host: str) -> str:
    # Interface names are at most 15 bytes.
    return f"{PREFIX}{host.replace('-', '')}"


def sweep() -> None:
    """Remove this harness's namespaces, their processes and the bridge, whoever left them."""
    names = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines()]
    names = [name for name in names if name.startswith(PREFIX)]
    procs: list[psutil.Process] = []
    for name in names:
        for pid in _ip("netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(int(pid)))
    # Every namespace's processes killed first, then waited for together: one that is slow
    # to go (a write to disk under way) does not hold the others up.
    _kill_together(procs)
    for name in names:
        _ip("netns", "del", name, check=False)
    links = _ip("-o", "link", "show", check=False).stdout
    for name in re.findall(rf"^\d+: ({re.escape(PREFIX)}[\w-]+)[@:]", links, re.M):
        _ip("link", "del", name, check=False)


def build_network() -> None:
    """The bridge with the gateways' address, and one namespace per host on it."""
    sweep()
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{GATEWAY_SIDE}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for host in HOSTS:
        ns, outside, inside = netns(host), _veth(host), f"{_veth(host)}i"
        _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "master", BRIDGE)
        _ip("link", "set", outside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{address(host)}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")


def cut(host: str) -> None:
    """The host's cable pulled: nothing in or out, its processes keep running."""
    _ip("link", "set", _veth(host), "down")


def heal(host: str) -> None:
    _ip("link", "set", _veth(host), "up")


def in_netns(host: str, argv: list[str], user: str | None = None) -> list[str]:
    as_user = ["runuser", "-u", user, "--"] if user else []
    return ["ip", "netns", "exec", netns(host), *as_user, *argv]


def kill_family(pid: int) -> None:
    """SIGKILL a process and everything it started: a power cut of that program."""
    _kill_together(_family(pid))


def _family(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    return []


def _kill_together(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


class Etcd:
    def __init__(self, root: Path) -> None:
        url = f"http://{address('etcd')}"
        data = root / "etcd"
        self.proc = Proc(
            "etcd",
            in_netns(
                "etcd",
                [
                    ETCD,
                    "--name=etcd-a",
                    f"--data-dir={data}",
                    f"--listen-client-urls={url}:2379",
                    f"--advertise-client-urls={url}:2379",
                    f"--listen-peer-urls={url}:2380",
                    f"--initial-advertise-peer-urls={url}:2380",
                    f"--initial-cluster=etcd-a={url}:2380",
                ],
            ),
            root,
        )
        self.url = f"{url}:2379"

    def start(self) -> Etcd:
        self.proc.start()
        wait_for("etcd /health", lambda: httpx.get(f"{self.url}/health").is_success, timeout=30)
        return self


class PatroniNode:
    """One PostgreSQL node: the shipped patroni.yml with this node's name, addresses and
    directories; run as postgres in the node's namespace."""

    def __init__(self, root: Path, name: str, timings: dict[str, int] | None = None) -> None:
        """``timings``: Patroni settings (ttl, loop_wait, retry_timeout) to use instead of
        the shipped file's; None keeps those."""
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        config = yaml.safe_load((DEPLOY / "patroni.yml").read_text())
        if timings is not None:
            dcs = config["bootstrap"]["dcs"]
            dcs.update(timings)
            # Patroni's own rule, or it may demote a healthy primary.
            assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"], dcs
        addr = address(name)
        config["name"] = name
        config["restapi"]["connect_address"] = f"{addr}:8008"
        config["etcd3"]["hosts"] = f"{address('etcd')}:2379"
        pg = config["postgresql"]
        pg["connect_address"] = f"{addr}:5432"
        pg["data_dir"] = str(self.data)
        pg["pgpass"] = str(self.dir / "pgpass")
        # Both nodes share this machine's file system: each its own socket directory.
        pg["parameters"] = {"unix_socket_directories": str(self.dir)}
        pg["authentication"]["superuser"]["password"] = SUPERUSER_PASSWORD
        pg["pg_hba"] = [line.replace("10.0.0.0/24", f"{NET}.0/24") for line in pg["pg_hba"]]
        self.config = self.dir / "patroni.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.rest = f"http://{addr}:8008"
        self.proc = Proc(
            f"patroni-{name}", in_netns(name, [str(PATRONI), str(self.config)], "postgres"), root
        )

    def start(self) -> PatroniNode:
        self.proc.start()
        return self

    def postmaster(self) -> psutil.Process:
        return psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))

    def psql(self, sql: str) -> str | None:
        """``sql`` run by the postgres user over the node's Unix socket (peer, as the shipped
        pg_hba says): reachable even while the node's network is cut, so the test sees what
        the node itself believes. None when the server does not answer."""
        done = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "/usr/lib/postgresql/15/bin/psql",
                "-XAtq",
                "-h",
                str(self.dir),
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PGCONNECT_TIMEOUT": "2", "PATH": os.environ.get("PATH", "")},
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def in_recovery(self) -> bool | None:
        """True: a standby (read-only); False: takes writes; None: not running."""
        answer = self.psql("SELECT pg_is_in_recovery()")
        return None if answer is None else answer == "t"

    def serving(self) -> bool | None:
        """:meth:`in_recovery`, and an error at once if Patroni itself has exited (it gives
        up on a bootstrap it cannot finish, and waiting on would only time out)."""
        if not self.proc.running:
            raise AssertionError(f"patroni on {self.name} exited\n{self.proc.log_tail(40)}")
        return self.in_recovery()

    def patronictl(self, *args: str) -> str:
        done = subprocess.run(
            in_netns(self.name, [str(PATRONICTL), "-c", str(self.config), *args], "postgres"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"patronictl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout


@dataclass
class Member:
    name: str
    role: str  # leader | sync_standby | replica
    state: str  # running | streaming | ...
    timeline: int | None


def members(nodes: list[PatroniNode]) -> dict[str, Member]:
    """The cluster as any reachable node's Patroni REST API sees it (GET /cluster)."""
    for node in nodes:
        with contextlib.suppress(httpx.HTTPError):
            body = httpx.get(f"{node.rest}/cluster", timeout=2).json()
            return {
                m["name"]: Member(m["name"], m["role"], m["state"], m.get("timeline"))
                for m in body["members"]
            }
    return {}


class HubHost:
    """``edge-hub serve`` in its own namespace, on the cluster's multi-host URL."""

    def __init__(self, root: Path, name: str, database: str, extra: str = "") -> None:
        """``extra``: more hub.toml lines (e.g. the webhooks)."""
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.url = f"http://{address(name)}:8080"
        self.config = self.dir / "hub.toml"
        self.config.write_text(
            f'listen = "{address(name)}:8080"\n'
            f'database = "{database}"\n'
            'anomaly_url = "http://127.0.0.1:9"\n'
            "database_connect_timeout_s = 3.0\n"
            "database_pool_timeout_s = 5.0\n"
            "retention = { raw_days = 0, minute_days = 0, hour_days = 0 }\n" + extra
        )
        self.proc = Proc(
            name, in_netns(name, [PY, "-m", "hub", "serve", "--config", str(self.config)]), root
        )

    def start(self) -> HubHost:
        self.proc.start()
        return self

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/health/ready", timeout=10).status_code == 200
        return False

    def wait_ready(self) -> HubHost:
        wait_for(f"{self.name} /health/ready", self.ready, timeout=120, every=0.2)
        return self

    def kill(self) -> None:
        assert self.proc.popen is not None
        kill_family(self.proc.popen.pid)
        self.proc.popen.wait(10)

    def ingest_answers(self) -> collections.Counter[str]:
        """This hub process's answers to sync batches since it started, by status (its
        /metrics)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = re.findall(r"^edge_hub_http_requests_total\{([^}]*)\} (\S+)$", text, re.M)
        answers: collections.Counter[str] = collections.Counter()
        for labels, value in found:
            if 'route="/api/v1/ingest"' in labels:
                status = re.search(r'status="(\d+)"', labels)
                assert status is not None
                answers[status.group(1)] += int(float(value))
        return answers


class Balancer:
    """HAProxy with the shipped config, bound in its namespace, sending to the hub hosts."""

    def __init__(self, root: Path) -> None:
        self.sock = root / "haproxy.sock"
        text = (DEPLOY / "haproxy.cfg").read_text()
        text = text.replace("bind 127.0.0.1:8080", f"bind {address('lb')}:8080")
        text = re.sub(r"server hub-a \S+", f"server hub-a {address('hub-a')}:8080", text)
        text = re.sub(r"server hub-b \S+", f"server hub-b {address('hub-b')}:8080", text)
        # The test asks HAProxy which hosts it sends to; nothing else of the config changes.
        text = text.replace(
            "global\n", f"global\n    stats socket {self.sock} mode 600 level admin\n", 1
        )
        self.config = root / "haproxy.cfg"
        self.config.write_text(text)
        self.url = f"http://{address('lb')}:8080"
        self.proc = Proc("haproxy", in_netns("lb", [HAPROXY, "-db", "-f", str(self.config)]), root)

    def ready(self) -> bool:
        """HAProxy answers and sends to a hub that is ready."""
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/health/ready", timeout=10).status_code == 200
        return False

    def start(self) -> Balancer:
        self.proc.start()
        wait_for("HAProxy to send to a ready hub", self.ready, timeout=30, every=0.1)
        return self

    def kill(self) -> None:
        assert self.proc.popen is not None
        kill_family(self.proc.popen.pid)
        self.proc.popen.wait(10)

    def answered_5xx(self) -> int:
        """5xx answers HAProxy gave gateways since it started (its own 503s when no hub was
        ready, and the hubs' 503s passed on)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        front = next(r for r in rows if r["pxname"] == "edge_hub" and r["svname"] == "FRONTEND")
        return int(front["hrsp_5xx"] or 0)


def make_root(base: Path | None = None) -> Path:
    """The cluster's directory, under ``base`` (default: the system's temp dir)."""
    # Not under pytest's tmp dir: that is root's, 0700, and PostgreSQL runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="edge-cluster-", dir=base))
    root.chmod(0o755)
    return root


def stop_all(procs: list[Proc]) -> None:
    """SIGKILL every one of ``procs`` and what they started, all at once."""
    family: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(Exception):
            if proc.popen is not None and proc.running:
                family += _family(proc.popen.pid)
    _kill_together(family)


def elapsed_since(started: float) -> float:
    return time.monotonic() - started


def signal_postmaster(node: PatroniNode) -> None:
    """kill -9 of the node's postmaster alone, as the OOM killer would."""
    os.kill(node.postmaster().pid, signal.SIGKILL)


def healthy(nodes: list[PatroniNode]) -> bool:
    """One leader running, the other node its synchronous standby, streaming, on the
    leader's timeline, and the leader's PostgreSQL itself waits for that standby."""
    ms = members(nodes)
    roles = sorted((m.role, m.state) for m in ms.values())
    if roles != [("leader", "running"), ("sync_standby", "streaming")]:
        return False
    if len({m.timeline for m in ms.values()}) != 1:
        return False
    leader = next(n for n in nodes if ms[n.name].role == "leader")
    standby = next(n for n in nodes if n is not leader)
    replication = leader.psql(
        "SELECT state || ' ' || sync_state FROM pg_stat_replication "
        f"WHERE application_name = '{standby.name}'"
    )
    return replication == "streaming sync"


def start_database(
    root: Path, started: list[Proc], timings: dict[str, int] | None = None
) -> tuple[list[PatroniNode], str]:
    """The network, etcd and both PostgreSQL nodes with the hub's role and database; returns
    the nodes and the hubs' multi-host URL. Every process started is appended to ``started``
    at once, so a set-up that fails half way still has its processes stopped. ``timings``:
    Patroni's, instead of the shipped file's (:class:`PatroniNode`)."""
    build_network()
    etcd = Etcd(root)
    started.append(etcd.proc)
    etcd.start()
    # Addresses and directories are this net's; the timings the caller's (the bench keeps
    # the shipped ones, whose failover it measures).
    nodes = [PatroniNode(root, name, timings) for name in ("pg-a", "pg-b")]
    started.append(nodes[0].proc)
    nodes[0].start()
    wait_for("pg-a to bootstrap as the leader", lambda: nodes[0].serving() is False, 120, 0.2)
    started.append(nodes[1].proc)
    nodes[1].start()
    wait_for(
        "pg-b to stream as the synchronous standby",
        lambda: nodes[1].serving() is not None and healthy(nodes),
        120,
        0.2,
    )
    # The hub's own role and database, as docs/operations.md has the operator make them.
    assert nodes[0].psql(f"CREATE ROLE edge LOGIN PASSWORD '{HUB_PASSWORD}'") is not None
    assert nodes[0].psql("CREATE DATABASE edge OWNER edge") is not None
    hosts = ",".join(f"{address(n.name)}:5432" for n in nodes)
    return nodes, f"postgresql://edge:{HUB_PASSWORD}@{hosts}/edge?target_session_attrs=read-write"


class WritableProbe(threading.Thread):
    """Opens a session to a writable primary through the multi-host URL, again and again, and
    records when that worked: the seconds without a writable primary are read off this."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.tries: list[tuple[float, bool]] = []  # (monotonic start, worked)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                # tcp_user_timeout: a session opened just before its host was cut off gives
                # up within 2 s, instead of waiting out the cut and hiding the outage.
                with psycopg.connect(self.url, connect_timeout=2, tcp_user_timeout=2000) as conn:
                    conn.execute("SELECT 1")
                worked = True
            except psycopg.Error:
                worked = False
            self.tries.append((started, worked))
            self.halt.wait(0.1)

    def outage_since(self, fault_at: float) -> float:
        """Seconds from the fault to the first writable session after the last refused one
        (0 when none was refused)."""
        tries = [t for t in self.tries if t[0] >= fault_at]
        failed = [start for start, ok in tries if not ok]
        if not failed:
            return 0.0
        back = next(start for start, ok in tries if ok and start > failed[-1])
        return back - fault_at

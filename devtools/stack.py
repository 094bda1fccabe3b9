"""Start the real parts of factory-edge on free loopback ports: broker, anomaly-detector, hub,
agent. Used by the integration/fault tests, the benchmarks and ``just demo``, so that all three
exercise the same processes a user runs.

Every process writes its output to ``<dir>/<name>.log``; ``Proc.log_tail()`` shows it when a
test fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = 20.0, every: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """One child process with its log file."""

    name: str
    argv: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        log.write(f"\n--- start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C in the demo reaches us, not the children directly
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, exactly like a power cut of the process."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"({self.name}: no log)"
        return f"--- {self.name} log (last {lines} lines) ---\n" + "\n".join(text[-lines:])


class Broker:
    """A real mosquitto with persistence on a free port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        (workdir / "mosquitto-data").mkdir(parents=True, exist_ok=True)
        # Mirrors deploy/mosquitto.conf where it matters for delivery guarantees: persistence,
        # a large inflight window (the agent acks after commit, a batch at a time) and a deep
        # per-client queue so a stopped agent's persistent session keeps everything.
        self.conf.write_text(
            textwrap.dedent(
                f"""\
                listener {self.port} 127.0.0.1
                allow_anonymous true
                persistence true
                persistence_location {workdir / "mosquitto-data"}/
                autosave_interval 1
                user {_user()}
                max_inflight_messages 1000
                max_queued_messages 10000000
                max_queued_bytes 0
                log_dest stderr
                log_type error
                log_type warning
                """
            )
        )
        self.proc = Proc(
            "mosquitto", [mosquitto_path() or "mosquitto", "-c", str(self.conf)], workdir
        )

    def start(self) -> Broker:
        self.proc.start()
        wait_for("mosquitto to listen", lambda: port_open(self.port), timeout=10)
        return self

    def stop(self) -> None:
        self.proc.stop()


def _user() -> str:
    # Started as root, mosquitto drops to the "mosquitto" user, which cannot write its
    # persistence file under a root-only temp dir: every save then fails ("Permission denied")
    # and a restart loses what it held. Staying the user we are keeps persistence real.
    return pwd.getpwuid(os.geteuid()).pw_name


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )


class EmbeddedBroker:
    """amqtt in a subprocess, for ``just demo`` on machines without mosquitto."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = Proc("amqtt", [PY, "-m", "devtools.embedded_broker", str(self.port)], workdir)

    def start(self) -> EmbeddedBroker:
        self.proc.start()
        wait_for("the embedded broker to listen", lambda: port_open(self.port), timeout=20)
        return self

    def stop(self) -> None:
        self.proc.stop()


def detector_binary() -> Path:
    for profile in ("release", "debug"):
        path = REPO / "target" / profile / "anomaly-detector"
        if path.exists():
            return path
    raise FileNotFoundError(
        "anomaly-detector is not built: run `cargo build --release -p anomaly-detector`"
    )


def edge_load_binary() -> Path:
    for profile in ("release", "debug"):
        path = REPO / "target" / profile / "edge-load"
        if path.exists():
            return path
    raise FileNotFoundError("edge-load is not built: run `cargo build --release -p edge-load`")


class Detector:
    def __init__(
        self, workdir: Path, port: int | None = None, body_limit: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(
            "anomaly-detector",
            [str(detector_binary()), "--listen", f"127.0.0.1:{self.port}"],
            workdir,
            env={"RUST_LOG": "warn"}
            | ({"ANOMALY_DETECTOR_BODY_LIMIT_BYTES": str(body_limit)} if body_limit else {}),
        )

    def start(self) -> Detector:
        self.proc.start()
        wait_for("anomaly-detector /health", lambda: httpx.get(f"{self.url}/health").is_success)
        return self

    def stop(self) -> None:
        self.proc.stop()


def hub_cli(*args: str, config: Path) -> str:
    """``edge-hub ARGS --config CONFIG``'s stdout, run in this process: the command's own code
    (hub.cli.main), without an interpreter start-up for each call (half a second or more,
    and test set-ups make a gateway and a token of each role for every hub they start)."""
    from hub.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--config", str(config)], stdout=out, stderr=err)
    if code != 0:
        raise RuntimeError(f"edge-hub {' '.join(args)} failed ({code}): {err.getvalue()}")
    return out.getvalue().strip()


# How long a started process may take to answer: hang detection on a loaded machine.
START_TIMEOUT_S = 120.0

# [retention] that expires nothing (a TOML inline table, so a config can still add keys).
KEEP_FOREVER = "{ raw_days = 0, minute_days = 0, hour_days = 0 }"


class Hub:
    """The real edge-hub process with its own database."""

    def __init__(
        self,
        workdir: Path,
        anomaly_url: str = "http://127.0.0.1:9",
        port: int | None = None,
        database: str | None = None,
        retention: str = KEEP_FOREVER,
    ) -> None:
        """``database``: a hub.toml database URL (postgresql://...); default an SQLite file
        ``workdir/hub.db``. ``retention``: the ``[retention]`` table as a TOML inline table;
        by default every tier is kept, since tests and benchmarks replay readings with fixed
        timestamps from years ago that the 90-day default would start expiring mid-run."""
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "hub.toml"
        self.db = workdir / "hub.db"
        self.database = database or f"sqlite:///{self.db}"
        self.config.write_text(
            f'listen = "127.0.0.1:{self.port}"\n'
            f'database = "{self.database}"\n'
            f'anomaly_url = "{anomaly_url}"\n'
            f"retention = {retention}\n"
        )
        self.proc = Proc(
            "edge-hub", [PY, "-m", "hub", "serve", "--config", str(self.config)], workdir
        )
        self._read_token: str | None = None

    def cli(self, *args: str) -> str:
        return hub_cli(*args, config=self.config)

    def add_gateway(self, gateway_id: str, factory: str = "plant-1") -> str:
        return self.cli("gateway", "add", gateway_id, "--factory", factory)

    @property
    def read_token(self) -> str:
        if self._read_token is None:
            self._read_token = self.cli("token", "add", "--role", "read")
        return self._read_token

    def start(self) -> Hub:
        self.proc.start()
        # A hang detector, not a start-up figure: a hub that migrates and imports on one busy
        # core (the suite pinned with taskset beside a build) took over 30 s here.
        wait_for(
            "edge-hub /health/ready",
            lambda: httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200,
            timeout=START_TIMEOUT_S,
        )
        return self

    def stop(self) -> None:
        self.proc.stop()

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.read_token}"},
            timeout=10,
        )

    def readings_by_sensor(self) -> dict[str, list[tuple[float, float]]]:
        """Every stored reading, as {sensor key: [(ts, value), ...] sorted}."""
        result: dict[str, list[tuple[float, float]]] = {}
        with self.client() as c:
            sensors = c.get("/api/v1/sensors").raise_for_status().json()["data"]
            for sensor in sensors:
                rows = (
                    c.get(f"/api/v1/sensors/{sensor['id']}/readings", params={"limit": 100_000})
                    .raise_for_status()
                    .json()["data"]
                )
                result[sensor["key"]] = sorted((r["ts"], r["value"]) for r in rows)
        return result

    def counts_by_sensor(self) -> dict[str, int]:
        with self.client() as c:
            sensors = c.get("/api/v1/sensors").raise_for_status().json()["data"]
            return {
                s["key"]: c.get(f"/api/v1/sensors/{s['id']}/stats")
                .raise_for_status()
                .json()["data"]["count"]
                for s in sensors
            }


class Agent:
    """The real edge-agent process with its own buffer file."""

    def __init__(
        self,
        workdir: Path,
        *,
        gateway_id: str,
        mqtt_port: int,
        hub_url: str,
        token: str,
        extra: str = "",
        name: str = "edge-agent",
        settings: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """``settings``: keys to add or override per section, e.g.
        ``{"buffer": {"max_bytes": 1_000_000}, "hub": {"timeout_s": 2}}``."""
        self.workdir = workdir
        self.config = workdir / f"{name}.toml"
        self.buffer = workdir / f"{name}-buffer.db"
        sections: dict[str, dict[str, object]] = {
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "subscribe": ["factory/#"]},
            "buffer": {"path": str(self.buffer)},
            "hub": {"url": hub_url, "token": token, "interval_s": 0.2, "backoff_max_s": 1.0},
            # Several agents share this machine in tests and bench: no fixed metrics port.
            "metrics": {"listen": ""},
        }
        for section, values in (settings or {}).items():
            sections.setdefault(section, {}).update(values)
        # JSON scalars and string lists are valid TOML values.
        body = "".join(
            f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
            for section, values in sections.items()
        )
        self.config.write_text(f"gateway_id = {json.dumps(gateway_id)}\n{body}{extra}")
        self.proc = Proc(name, [PY, "-m", "agent", "run", "--config", str(self.config)], workdir)

    def start(self, wait_subscribed: bool = True) -> Agent:
        self.proc.start()
        if wait_subscribed:
            wait_for(
                "edge-agent to subscribe",
                lambda: bool(self.status().get("mqtt", {}).get("connected")),
                timeout=START_TIMEOUT_S,
                every=0.1,
            )
        return self

    def stop(self) -> int | None:
        return self.proc.stop()

    def status(self) -> dict[str, Any]:
        """``edge-agent status --json``'s document, made in this process by the command's own
        code (tests/agent/test_cli.py runs the command itself): waits poll it ten times a
        second, and an interpreter start-up for each poll took a core from the very processes
        being waited on."""
        from agent.cli import status_document
        from agent.config import AgentConfig
        from shared.config import load_settings

        return status_document(load_settings(AgentConfig, str(self.config)))


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value}, as the lines spell them."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@contextlib.contextmanager
def stopping(*parts: Any) -> Iterator[None]:
    """Stop every part on exit, last started first, whatever happened."""
    try:
        yield
    finally:
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()

"""Fixtures for hub tests: a real ``edge-hub serve`` subprocess on a free port, and storage.

Every test that touches storage runs on both engines: the ``database_url`` fixture (one
test) and ``hub_database`` (a module's hub process) are parametrised over SQLite and a real
PostgreSQL server that the session starts once (tests/conftest.py), with a fresh database each.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devtools.stack import START_TIMEOUT_S, hub_cli
from hub.storage import Storage, open_storage
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ["sqlite", "postgresql"]


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


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'data' / 'hub.db'}"


class _KeepForever:
    def __str__(self) -> str:
        return "{ raw_days = 0, minute_days = 0, hour_days = 0 }"


def write_config(
    directory: Path, port: int, *, database: str | None = None, **extra: object
) -> Path:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f'database = "{database or sqlite_url(directory)}"',
        'log_level = "warning"',
    ]
    # Tests post readings with fixed timestamps from years ago: the 90-day default retention
    # would start expiring them mid-test. A test of retention passes its own table.
    extra.setdefault("retention", _KeepForever())
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
    """What ``edge-hub ARGS`` prints (a token), run in this process (devtools.stack.hub_cli);
    tests of the command itself use :func:`run_cli`."""
    return hub_cli(*args, config=config)


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


# The hubs of the running tests: a failing test's report ends with each one's log, which
# pytest's temporary directories do not keep (a module's hub once answered 401 to a token
# the CLI had just added, in one run of many, and its log was gone before anyone read it).
_STARTED: list[HubProcess] = []
LOG_TAIL_LINES = 80


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for hub in _STARTED:
            with contextlib.suppress(OSError):
                lines = hub.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                title = f"edge-hub on port {hub.port}: the last {len(lines)} lines of {hub.log}"
                report.sections.append((title, "\n".join(lines)))
    # A hub stopped in this phase is still shown above (its teardown may be what failed).
    _STARTED[:] = [hub for hub in _STARTED if hub.proc.poll() is None]


def start_hub(directory: Path, *, database: str | None = None, **extra: object) -> HubProcess:
    port = free_port()
    config = write_config(directory, port, database=database, **extra)
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
    _STARTED.append(hub)
    deadline = time.monotonic() + START_TIMEOUT_S  # hang detection on a loaded machine
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


@pytest.fixture(scope="session")
def pg_migrated(pg_server: PgServer) -> str:
    """The name of a database migrated to the newest schema once for the session: the
    template of each test's ``storage`` and each module's hub, which then start at the newest
    schema in one CREATE DATABASE instead of running every step again (half a second or more
    each on a busy machine)."""
    url = pg_server.create_database()
    s = open_storage(url)
    try:
        s.migrate()
    finally:
        s.close()  # a template takes no connections while it is copied
    return url.rsplit("/", 1)[1]


def engine_url(request: pytest.FixtureRequest, directory: Path, *, migrated: bool = False) -> str:
    """A fresh database of the engine ``request.param`` names; ``migrated``: already at the
    newest schema on PostgreSQL (SQLite migrates a new file in a blink)."""
    if request.param == "sqlite":
        return sqlite_url(directory)
    server: PgServer = request.getfixturevalue("pg_server")
    if migrated:
        return server.create_database(template=request.getfixturevalue("pg_migrated"))
    return server.create_database()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Empty, for the tests of migrating itself; migrated already when the test works on
    # ``storage`` (which migrates it in any case: there a no-op).
    return engine_url(request, tmp_path, migrated="storage" in request.fixturenames)


@pytest.fixture(scope="module", params=ENGINES)
def hub_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database of a module's hub process, on each engine in turn."""
    return engine_url(request, tmp_path_factory.mktemp("db"), migrated=True)


@pytest.fixture
def storage(database_url: str) -> Iterator[Storage]:
    s = open_storage(database_url)
    s.migrate()
    yield s
    s.close()


def engine_of(storage: Storage) -> str:
    return "postgresql" if hasattr(storage, "url") else "sqlite"


def query(storage: Storage, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) read behind storage's back, on either engine."""
    if engine_of(storage) == "sqlite":
        return [tuple(r) for r in storage.conn.execute(sql, params).fetchall()]  # type: ignore[attr-defined]
    with psycopg.connect(storage.url) as conn:  # type: ignore[attr-defined]
        return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]


def dump(storage: Storage) -> str:
    """Every row of every table as text: what a backup of the database would hold."""
    if engine_of(storage) == "sqlite":
        return "\n".join(storage.conn.iterdump())  # type: ignore[attr-defined]
    with psycopg.connect(storage.url) as conn:  # type: ignore[attr-defined]
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return "\n".join(
            str(row[0]) for t in tables for row in conn.execute(f'SELECT t::text FROM "{t}" t')
        )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    directory = tmp_path_factory.mktemp("hub")
    # Tokens are made while the hub runs: the CLI works on a live database.
    server = start_hub(directory, database=hub_database, max_body_bytes=1_000_000)
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

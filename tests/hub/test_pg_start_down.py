"""A hub started while its PostgreSQL does not answer: it serves, says which hosts it tried,
is live and not ready; once the server answers it migrates, becomes ready and stores
readings, without a restart. Until it has migrated, requests get 503, never 500."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.storage.postgres import MIGRATE_LOCK
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import (
    START_TIMEOUT_S,
    clean_env,
    free_port,
    hub_command,
    token,
    write_config,
)
from tests.pg import PgServer

BATCH = Batch(gateway_id="gw-01", readings=[WireReading(1, "l/m/s", 1.7e9, 1.0)])


@pytest.fixture
def later_server() -> Iterator[PgServer]:
    server = PgServer()  # its port is chosen; the server is started by the test
    yield server
    server.stop()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=10).status_code
    except httpx.HTTPError:
        return None


def _until(url: str, status: int, bound_s: float) -> httpx.Response:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if _status(url) == status:
            return httpx.get(url, timeout=10)
    raise AssertionError(f"{url} did not answer {status} within {bound_s}s")


@dataclass(frozen=True)
class _Hub:
    proc: subprocess.Popen[bytes]
    config: Path
    log: Path
    base: str


@contextmanager
def _serve(tmp_path: Path, database: str) -> Iterator[_Hub]:
    """A hub process on ``database``, which may not answer yet (short connect and pool
    timeouts: the test waits on them); it must stop cleanly at the end."""
    port = free_port()
    config = write_config(
        tmp_path,
        port,
        database=database,
        anomaly_scan_interval_s=0,
        database_connect_timeout_s=2.0,
        database_pool_timeout_s=2.0,
    )
    log = tmp_path / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*hub_command(), "serve", "--config", str(config)],
            env=clean_env(),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _Hub(proc, config, log, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()


def _stores_a_batch(hub: _Hub) -> None:
    """A new gateway's batch is stored: the hub has migrated its database."""
    gateway = token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")
    stored = httpx.post(
        f"{hub.base}/api/v1/ingest",
        content=encode_batch(BATCH),
        headers={"Authorization": f"Bearer {gateway}", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert stored.status_code == 200, stored.text


def test_a_hub_started_before_its_database_becomes_ready_when_it_answers(
    tmp_path: Path, later_server: PgServer
) -> None:
    host = f"127.0.0.1:{later_server.port}"
    with _serve(tmp_path, later_server.url()) as hub:
        _until(f"{hub.base}/health/live", 200, START_TIMEOUT_S)
        ready = httpx.get(f"{hub.base}/health/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["details"] == [{"host": host}]
        assert hub.proc.poll() is None
        assert f"no writable database answered ({host})" in hub.log.read_text()

        later_server.start()
        _until(f"{hub.base}/health/ready", 200, 60.0)
        _stores_a_batch(hub)


def test_requests_before_the_schema_exists_get_503_not_500(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """The window after a late database: it answers, but the hub has not migrated it yet.
    Every request that needs the hub's tables gets 503 database_unavailable with
    Retry-After (a load balancer may send it before /health/ready said so), never a 500.

    PostgreSQL only: a hub on SQLite migrates its file before it listens. The window is
    held open by taking the hub's migration lock before the hub can: the database is made
    only after the hub started without it."""
    name = f"late_{os.getpid()}"
    with _serve(tmp_path, pg_server.url(name)) as hub:
        _until(f"{hub.base}/health/live", 200, START_TIMEOUT_S)
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(pg_server.url(name), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            bearer = {"Authorization": "Bearer not-a-token-yet"}
            with httpx.Client(base_url=hub.base, timeout=30) as c:
                answers = {
                    "list": c.get("/api/v1/factories", headers=bearer),
                    "ingest": c.post(
                        "/api/v1/ingest",
                        content=encode_batch(BATCH),
                        headers={**bearer, "Content-Encoding": "gzip"},
                    ),
                    "console": c.get("/"),
                    "sign-in": c.post("/login", data={"token": "x"}),
                }
                for what, answer in answers.items():
                    assert answer.status_code == 503, (what, answer.text)
                    assert answer.json()["error"]["code"] == "database_unavailable", what
                    assert int(answer.headers["retry-after"]) >= 1, what
                # What needs no tables still answers; the probe says why it is not ready.
                assert c.get("/health/live").status_code == 200
                assert c.get("/health/ready").status_code == 503
                assert c.get("/openapi.json").status_code == 200
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        _until(f"{hub.base}/health/ready", 200, 60.0)
        _stores_a_batch(hub)
        assert " 500" not in hub.log.read_text() and "unhandled error" not in hub.log.read_text()

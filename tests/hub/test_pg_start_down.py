"""A hub started while its PostgreSQL does not answer: it serves, says which hosts it tried,
is live and not ready; once the server answers it migrates, becomes ready and stores
readings, without a restart."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def test_a_hub_started_before_its_database_becomes_ready_when_it_answers(
    tmp_path: Path, later_server: PgServer
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        port,
        database=later_server.url(),
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
    base = f"http://127.0.0.1:{port}"
    host = f"127.0.0.1:{later_server.port}"
    try:
        _until(f"{base}/health/live", 200, START_TIMEOUT_S)
        ready = httpx.get(f"{base}/health/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["details"] == [{"host": host}]
        assert proc.poll() is None
        assert f"no writable database answered ({host})" in log.read_text()

        later_server.start()
        _until(f"{base}/health/ready", 200, 60.0)
        gateway = token(config, "gateway", "add", "gw-01", "--factory", "acme")
        batch = Batch(gateway_id="gw-01", readings=[WireReading(1, "l/m/s", 1.7e9, 1.0)])
        stored = httpx.post(
            f"{base}/api/v1/ingest",
            content=encode_batch(batch),
            headers={"Authorization": f"Bearer {gateway}", "Content-Encoding": "gzip"},
            timeout=30,
        )
        assert stored.status_code == 200, stored.text
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()

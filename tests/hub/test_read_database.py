"""History reads from a real streaming standby (``read_database``): a primary made with
initdb, a standby with ``pg_basebackup -R`` following it, and a hub writing to the one and
reading history from the other. What a standby holds, and how far behind it is, is steered
with ``pg_wal_replay_pause()``: the test waits on conditions, never on time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, run_cli, start_hub, token, write_config
from tests.pg import PgServer
from tests.pg_standby import PgStandby

API = "/api/v1"
T0 = 1_700_000_000.0
KEY = "l1/press/temp"
WAIT_S = 60.0

T = TypeVar("T")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PgServer, PgStandby]]:
    """One primary and its standby for the module (initdb and a base backup take seconds);
    each test makes its own database on them, which the standby replicates."""
    primary = PgServer().start()
    standby: PgStandby | None = None
    try:
        standby = PgStandby(primary).start()
        yield primary, standby
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


@pytest.fixture
def pair(servers: tuple[PgServer, PgStandby]) -> Iterator[tuple[PgServer, PgStandby]]:
    """The module's servers, handed on following each other again whatever a test did to the
    standby (killed it, paused its replay)."""
    yield servers
    _, standby = servers
    try:
        standby.sql("SELECT 1")
    except psycopg.OperationalError:
        standby.restart()  # crash recovery, then it follows the primary again
    if standby.sql("SELECT pg_is_wal_replay_paused()"):
        standby.sql("SELECT pg_wal_replay_resume()")


@contextmanager
def hub_reading_from(
    directory: Path, pair: tuple[PgServer, PgStandby], query: str = ""
) -> Iterator[tuple[HubProcess, str]]:
    """A hub on a new database of the primary, reading history from the standby's copy of it
    (``query`` appended to the standby's URL); yields the hub and the primary's URL."""
    primary, standby = pair
    url = primary.create_database()
    hub = start_hub(
        directory,
        database=url,
        read_database=standby.url(url.rsplit("/", 1)[1]) + query,
        anomaly_scan_interval_s=0,
        database_connect_timeout_s=2.0,
        database_pool_timeout_s=2.0,
    )
    try:
        hub.tokens = {
            "gw": token(hub.config, "gateway", "add", "gw-01", "--factory", "acme"),
            "read": token(hub.config, "token", "add", "--role", "read"),
        }
        yield hub, url
    finally:
        assert hub.stop() == 0


def until(what: str, probe: Callable[[], T | None], bound_s: float = WAIT_S) -> T:
    """``probe()``'s first answer that is not None, asked again until ``bound_s`` passes."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
    raise AssertionError(f"timed out waiting for {what}")


def post(hub: HubProcess, first: int, n: int) -> None:
    batch = Batch(
        gateway_id="gw-01",
        readings=[WireReading(seq, KEY, T0 + seq, float(seq)) for seq in range(first, first + n)],
    )
    with hub.client("gw") as c:
        r = c.post(
            f"{API}/ingest", content=encode_batch(batch), headers={"Content-Encoding": "gzip"}
        )
    assert r.status_code == 200, r.text


def get(hub: HubProcess, path: str, **params: Any) -> dict[str, Any]:
    with hub.client("read") as c:
        r = c.get(f"{API}{path}", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def readings(hub: HubProcess, sensor: int) -> tuple[int, float]:
    """(how many readings the history read found, its meta.lag_s)."""
    body = get(hub, f"/sensors/{sensor}/readings", limit=1000)
    lag = body["meta"]["lag_s"]
    assert isinstance(lag, float), body["meta"]
    return len(body["data"]), lag


def on_primary(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def test_history_reads_come_from_the_standby_with_its_lag(
    tmp_path: Path, pair: tuple[PgServer, PgStandby]
) -> None:
    _, standby = pair
    with hub_reading_from(tmp_path, pair, "?target_session_attrs=prefer-standby") as (hub, url):
        post(hub, 1, 10)
        sensor = int(get(hub, "/sensors")["data"][0]["id"])

        # Written through ingest, then seen on the standby once it has replayed it.
        _, lag = until(
            "the standby to replay the first batch", lambda: _if(readings(hub, sensor), 10)
        )
        assert lag >= 0.0
        series = get(hub, f"/sensors/{sensor}/series", bucket="1m")
        assert isinstance(series["meta"]["lag_s"], float)
        stats = get(hub, f"/sensors/{sensor}/stats")
        assert stats["data"]["count"] == 10 and isinstance(stats["meta"]["lag_s"], float)
        metrics = httpx.get(f"{hub.url}/metrics").text
        assert "edge_hub_read_database_lag_seconds " in metrics
        # The latest reading is no history read: the primary answers it, without lag_s.
        assert "lag_s" not in get(hub, f"/sensors/{sensor}/latest")["meta"]

        # Replay paused: the next batch is stored on the primary, but not yet readable on the
        # standby, and its lag grows while the standby waits.
        standby.sql("SELECT pg_wal_replay_pause()")
        until(
            "replay to pause",
            lambda: standby.sql("SELECT pg_get_wal_replay_pause_state()") == "paused" or None,
        )
        post(hub, 11, 5)
        assert on_primary(url) == 15  # the write went to the primary
        first = until("lag while replay is paused", lambda: _positive(readings(hub, sensor)))
        later = until("the lag to grow", lambda: _grown(readings(hub, sensor), first))
        assert later > first
        assert readings(hub, sensor)[0] == 10  # not yet replayed there

        # Resumed: the standby catches up, and is no longer behind.
        standby.sql("SELECT pg_wal_replay_resume()")
        until("the standby to catch up", lambda: _caught_up(readings(hub, sensor), 15))
        assert on_primary(url) == 15


def test_a_read_database_that_does_not_answer_sends_reads_to_the_primary(
    tmp_path: Path, pair: tuple[PgServer, PgStandby]
) -> None:
    _, standby = pair
    with hub_reading_from(tmp_path, pair) as (hub, _url):
        post(hub, 1, 10)
        sensor = int(get(hub, "/sensors")["data"][0]["id"])
        until("the standby to replay the batch", lambda: _if(readings(hub, sensor), 10))
        standby.kill9()
        post(hub, 11, 5)
        # The standby is gone: the primary answers, with everything, and is behind nothing.
        assert readings(hub, sensor) == (15, 0.0)
        assert "edge_hub_read_database_lag_seconds NaN" in httpx.get(f"{hub.url}/metrics").text
        assert "read database unavailable" in hub.log.read_text()


def test_a_database_url_of_standbys_only_is_refused(
    tmp_path: Path, pair: tuple[PgServer, PgStandby]
) -> None:
    primary, standby = pair
    url = primary.create_database()
    name = url.rsplit("/", 1)[1]
    host = f"127.0.0.1:{standby.port}"
    for suffix in ("", "?target_session_attrs=read-write"):
        config = write_config(tmp_path, 1, database=standby.url(name) + suffix)
        for command in (("migrate",), ("serve",)):
            done = run_cli(config, *command)
            assert done.returncode == 1, (command, done.stdout, done.stderr)
            for said in ("no writable database", "none", "is writable", "standby", host):
                assert said in done.stderr, done.stderr


def _if(found: tuple[int, float], want: int) -> tuple[int, float] | None:
    return found if found[0] == want else None


def _positive(found: tuple[int, float]) -> float | None:
    return found[1] if found[1] > 0 else None


def _grown(found: tuple[int, float], than: float) -> float | None:
    return found[1] if found[1] > than else None


def _caught_up(found: tuple[int, float], want: int) -> bool | None:
    return True if found == (want, 0.0) else None


def test_read_database_is_refused_beside_sqlite_and_masked_beside_postgresql(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path}/hub.db"\n'
        'read_database = "postgresql://edge:pw@pg-b:5432/edge"\n'
    )
    done = run_cli(config, "check-config")
    assert done.returncode == 2, done.stdout
    assert "read_database is for a PostgreSQL database; database is SQLite" in done.stderr
    config.write_text(
        'database = "postgresql://edge:pw@pg-a:5432/edge"\nread_database = "sqlite:///hub.db"\n'
    )
    done = run_cli(config, "check-config")
    assert done.returncode == 2 and "read_database must be a postgresql:// URL" in done.stderr
    config.write_text(
        'database = "postgresql://edge:pw@pg-a:5432/edge"\n'
        'read_database = "postgresql://edge:pw@pg-b:5432,pg-c/edge?port=1,2,3"\n'
    )
    done = run_cli(config, "check-config")
    assert done.returncode == 2 and "read_database:" in done.stderr, done.stderr
    config.write_text(
        'database = "postgresql://edge:db-pw-4711@pg-a:5432/edge"\n'
        'read_database = "postgresql://edge:db-pw-4711@pg-b:5432/edge'
        '?target_session_attrs=prefer-standby"\n'
    )
    done = run_cli(config, "check-config")
    assert done.returncode == 0, done.stderr
    assert "db-pw-4711" not in done.stdout + done.stderr
    assert "postgresql://edge:***@pg-b:5432/edge?target_session_attrs=prefer-standby" in done.stdout

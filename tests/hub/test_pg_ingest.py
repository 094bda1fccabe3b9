"""PostgreSQL ingest: a usual batch (its sensors known) goes in one statement; another goes
by COPY straight into readings after a probe of what is stored. Both fall back to staging +
ON CONFLICT when another process stores some of its rows between the probe and the insert.
Either way each (gateway, seq) is stored, and rolled up, once.

PostgreSQL only: the SQLite engine has one writer at a time, so no store can slip in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from devtools.stack import wait_for
from hub.storage import GatewayReport, Storage
from hub.storage.dialect import UsualBatch
from hub.storage.model import reading_id
from hub.storage.postgres import PostgresStorage, onetrip
from hub.storage.postgres.partitions import DAY_S, day_of, partition_name
from shared.wire import WireReading
from tests.hub.conftest import query
from tests.hub.test_crud_storage import beside_a_lock, lock_waiters
from tests.pg import PgServer

REPORT = GatewayReport(0, 0, 0, "test")
T0 = 1_699_999_200.0


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.create_database()


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStorage]:
    storage = PostgresStorage(pg_url)
    storage.migrate()
    yield storage
    storage.close()


def _setup(storage: Storage) -> tuple[int, int]:
    gateway = storage.add_gateway("gw-1", "acme", "hash-1")
    factory = storage.get_gateway("gw-1")["factory_id"]  # type: ignore[index]
    return gateway, int(factory)


def _batch(first: int, n: int) -> list[WireReading]:
    return [
        WireReading(first + i, f"l/m/s{i % 3}", T0 + first + i, float(i % 11), None)
        for i in range(n)
    ]


def _tallies(storage: Storage) -> tuple[int, int, int, int]:
    (raw,) = query(storage, "SELECT count(*) FROM readings")
    (distinct,) = query(storage, "SELECT count(DISTINCT id) FROM readings")
    (minutes,) = query(storage, "SELECT coalesce(sum(count), 0) FROM rollup_1m")
    (hours,) = query(storage, "SELECT coalesce(sum(count), 0) FROM rollup_1h")
    return int(raw[0]), int(distinct[0]), int(minutes[0]), int(hours[0])


def test_a_store_that_slips_in_after_the_probe_falls_back_to_on_conflict(
    pg: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, factory = _setup(pg)
    assert pg.store_batch(gateway, factory, _batch(0, 300), REPORT).accepted == 300
    # The probe sees nothing, as it would if another process committed the first 300 rows
    # just after it: the COPY meets the unique key, and the staged path skips them.
    import hub.storage.postgres.dialect as engine

    monkeypatch.setattr(engine, "_stored_ids", lambda _cur, _rows: set())
    result = pg.store_batch(gateway, factory, _batch(0, 500), REPORT)
    assert (result.accepted, result.duplicates) == (200, 300)
    assert _tallies(pg) == (500, 500, 500, 500)


def test_concurrent_stores_of_the_same_batches_count_once(pg: PostgresStorage) -> None:
    gateway, factory = _setup(pg)
    batches = [_batch(i * 400, 400) for i in range(6)]
    accepted: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            for b in batches:
                accepted.append(pg.store_batch(gateway, factory, b, REPORT).accepted)
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(accepted) == 2400
    assert _tallies(pg) == (2400, 2400, 2400, 2400)


def test_a_batch_with_part_stored_copies_only_the_rest(pg: PostgresStorage) -> None:
    gateway, factory = _setup(pg)
    pg.store_batch(gateway, factory, _batch(100, 100), REPORT)
    result = pg.store_batch(gateway, factory, _batch(0, 300), REPORT)
    assert (result.accepted, result.duplicates) == (200, 100)
    rows: list[Any] = query(pg, "SELECT min(seq), max(seq) FROM readings")
    assert rows == [(0, 299)]
    assert _tallies(pg) == (300, 300, 300, 300)


def test_a_batch_of_scattered_seqs_is_probed_by_its_ids(pg: PostgresStorage) -> None:
    # Seqs too far apart for one range scan of the key: the probe asks for the ids themselves.
    gateway, factory = _setup(pg)
    scattered = [WireReading(i * 1_000_003, "l/m/s", T0 + i, float(i), None) for i in range(50)]
    assert pg.store_batch(gateway, factory, scattered[:20], REPORT).accepted == 20
    result = pg.store_batch(gateway, factory, scattered, REPORT)
    assert (result.accepted, result.duplicates) == (30, 20)
    assert _tallies(pg) == (50, 50, 50, 50)


def test_a_usual_batch_that_meets_another_store_is_undone_and_stored_once(
    pg: PostgresStorage, pg_url: str
) -> None:
    """Another process inserts part of a usual batch and commits while the batch's one
    statement waits on those rows: the statement's work is undone whole and the batch goes
    the careful way, so the rows the other process stored are neither doubled nor folded
    twice (they are not folded here at all: the test inserts them bare)."""
    gateway, factory = _setup(pg)
    pg.store_batch(gateway, factory, _batch(0, 3), REPORT)  # its sensors, known from now on
    batch = _batch(3, 300)
    pg.before_readings([r.ts for r in batch])
    sensors = dict(query(pg, "SELECT key, id FROM sensors"))
    other = [
        (reading_id(gateway, r.seq), sensors[r.key], r.ts, r.value, gateway, r.seq)
        for r in batch[:100]
    ]
    results: list[Any] = []
    with psycopg.connect(pg_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO readings (id, sensor_id, ts, value, gateway_id, seq) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            other,
        )
        # Uncommitted: the batch's check sees none of these rows, its insert waits on them.
        thread = threading.Thread(
            target=lambda: results.append(pg.store_batch(gateway, factory, batch, REPORT))
        )
        thread.start()
        wait_for("the batch to wait on the other insert", lambda: lock_waiters(pg_url) > 0, 60)
        conn.commit()
    thread.join(60)
    assert not thread.is_alive()
    [result] = results
    assert (result.accepted, result.duplicates) == (200, 100)
    # 303 readings, each once; the rollups hold the 203 this storage stored, once each.
    assert _tallies(pg) == (303, 303, 203, 203)
    (queued,) = query(pg, "SELECT count(*) FROM scan_queue")
    assert queued[0] == 3


def test_two_gateways_alerting_on_one_sensor_at_once_open_one_alarm(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hub processes store, at the same moment, each an edge alert of the same sensor from
    its own gateway (redundant gateways of a line): the second must not also find the sensor
    without an active alarm and open a second one; it joins the first as its source."""
    from hub.storage import alarm_sources
    from hub.storage.alerts import AlertFilter
    from tests.edge_alerts import RECENT_T0, threshold_alert

    a, b = PostgresStorage(pg_url), PostgresStorage(pg_url)
    a.migrate()
    gw1, factory = _setup(a)
    gw2 = a.add_gateway("gw-2", "acme", "hash-2")
    key = "l/m/temp"
    a.store_batch(gw1, factory, [WireReading(1, key, RECENT_T0, 40.0, None)], REPORT)
    original = alarm_sources._active_alarm
    first_read, second_read = threading.Event(), threading.Event()

    def racing(conn: Any, sensor_id: int) -> int | None:
        found = original(conn, sensor_id)
        if not first_read.is_set():
            first_read.set()
            # Until the other process has read too, or waits on a lock this one holds.
            wait_for(
                "the other store to read too or wait on a lock",
                lambda: second_read.is_set() or lock_waiters(pg_url) > 0,
                timeout=60,
            )
        else:
            second_read.set()
        return found

    monkeypatch.setattr(alarm_sources, "_active_alarm", racing)
    # No readings: the two batches share no rollup row, whose lock would order them anyway.
    failed: list[BaseException] = []

    def store_first() -> None:
        try:
            a.store_batch(gw1, factory, [], REPORT, [threshold_alert(key, RECENT_T0)])
        except BaseException as exc:
            failed.append(exc)

    first = threading.Thread(target=store_first)
    first.start()
    try:
        assert first_read.wait(60)
        b.store_batch(gw2, factory, [], REPORT, [threshold_alert(key, RECENT_T0 + 1)])
    finally:
        first.join(60)
    assert not failed and not first.is_alive()
    rows, total = a.list_alerts(AlertFilter(state="active"), 0, 10)
    assert total == 1, rows
    (sources,) = query(a, "SELECT count(*) FROM edge_alerts WHERE alarm_id = ?", (rows[0]["id"],))
    assert sources == (2,)
    a.close()
    b.close()


def test_a_usual_batch_does_not_wait_on_another_days_partition(
    pg: PostgresStorage, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention detaching or dropping an old day holds that partition's exclusive lock: the
    batches of today do not touch it, so they must not wait for it (nor pay, on each
    execution of their prepared statement, for locking every day a hub keeps)."""
    gateway, factory = _setup(pg)
    old = T0 - 30 * DAY_S
    pg.before_readings([old])
    usual: list[UsualBatch | None] = []
    store = onetrip.store

    def counted(*args: Any, **kwargs: Any) -> UsualBatch | None:
        usual.append(store(*args, **kwargs))
        return usual[-1]

    monkeypatch.setattr(onetrip, "store", counted)
    # Past psycopg's prepare threshold and PostgreSQL's first custom plans.
    for i in range(12):
        assert pg.store_batch(gateway, factory, _batch(i * 30, 30), REPORT).accepted == 30
    done, result = beside_a_lock(
        pg_url,
        partition_name(day_of(old)),
        lambda: pg.store_batch(gateway, factory, _batch(360, 30), REPORT),
    )
    assert done, "the batch waited on an old day's partition"
    assert result.accepted == 30
    # Every batch but the first (which made the sensors) went in one statement.
    assert len(usual) == 12 and None not in usual
    assert _tallies(pg) == (390, 390, 390, 390)

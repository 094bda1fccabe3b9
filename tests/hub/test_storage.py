"""Storage, on both engines: each (gateway, seq) stored exactly once; a batch is all or
nothing; migrations; and what each engine does its own way (WAL, partitions)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from hub.auth import hash_token
from hub.storage import Conflict, GatewayReport, Storage, StorageError, open_storage
from hub.storage.postgres.partitions import DAY_S, day_of, partition_name
from shared.timeutil import now
from shared.wire import WireAlert, WireReading
from tests.hub.conftest import dump, engine_of, query
from tests.hub.test_crud_storage import beside_a_lock

REPORT = GatewayReport(backlog=0, dropped=0, dead_letters=0, agent_version="t")
T0 = 1_700_000_000.0
OLD_SCHEMA = Path(__file__).parent / "data" / "hub_schema_5fc067f.sql"


def readings(seqs: range, key: str = "l1/m1/temp", t0: float = T0) -> list[WireReading]:
    return [WireReading(s, key, t0 + s, float(s), "C") for s in seqs]


def gateway(storage: Storage, name: str, factory: str = "acme") -> tuple[int, int]:
    gid = storage.add_gateway(name, factory, hash_token(name))
    record = storage.token_by_hash(hash_token(name))
    assert record is not None and record.factory_id is not None
    return gid, record.factory_id


def test_migrate_is_repeatable(storage: Storage) -> None:
    assert storage.ping()
    version = storage.schema_version()
    assert version >= 1
    assert storage.migrate() == 0
    storage.init_schema()
    assert storage.schema_version() == version


def test_newer_schema_is_refused(storage: Storage) -> None:
    if engine_of(storage) == "sqlite":
        storage.conn.execute("PRAGMA user_version=99")  # type: ignore[attr-defined]
    else:
        with psycopg.connect(storage.url, autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(StorageError, match="schema version 99"):
        storage.migrate()


def test_concurrent_migrations_run_once(database_url: str) -> None:
    """Hub processes starting at once: every one migrates, the schema is made once."""
    stores = [open_storage(database_url) for _ in range(4)]
    ran: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def go(s: Storage) -> None:
        try:
            barrier.wait()
            ran.append(s.migrate())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(ran)[:-1] == [0] * (len(stores) - 1) and ran.count(0) == len(stores) - 1
    assert len({s.schema_version() for s in stores}) == 1
    for s in stores:
        s.close()


def test_same_batch_twice_is_stored_once(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    first = storage.store_batch(gid, fid, readings(range(1, 101)), REPORT)
    second = storage.store_batch(gid, fid, readings(range(1, 101)), REPORT)
    assert (first.accepted, first.duplicates) == (100, 0)
    assert (second.accepted, second.duplicates) == (0, 100)
    assert storage.count_readings() == 100


def test_sensors_another_process_made_are_cached_once_looked_up(
    storage: Storage, database_url: str
) -> None:
    """Two hub processes on one database: the sensors one makes, the other learns from its
    census of a batch's keys, so its later batches of them are usual ones (no second look)."""
    gid, fid = gateway(storage, "gw-01")
    other = open_storage(database_url)
    try:
        # The other process has stored before: its cache of the factory is loaded.
        other.store_batch(gid, fid, readings(range(1, 3), key="l1/m1/old"), REPORT)
        storage.store_batch(gid, fid, readings(range(3, 5), key="l1/m1/new"), REPORT)
        keys = {"l1/m1/old", "l1/m1/new"}
        count, known = other.sensor_census(fid, keys)
        assert (count, known) == (2, keys)
        assert other.sensor_census(fid, keys) == (None, keys)  # from its cache alone
        result = other.store_batch(gid, fid, readings(range(5, 9), key="l1/m1/new"), REPORT)
        assert (result.accepted, result.duplicates) == (4, 0)
        assert query(storage, "SELECT count(*) FROM sensors") == [(2,)]
    finally:
        other.close()


def test_overlapping_batches_and_duplicates_within_a_batch(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    storage.store_batch(gid, fid, readings(range(1, 51)), REPORT)
    overlap = storage.store_batch(gid, fid, readings(range(40, 80)), REPORT)
    assert (overlap.accepted, overlap.duplicates) == (29, 11)
    twice = readings(range(80, 84)) + readings(range(80, 84))
    assert storage.store_batch(gid, fid, twice, REPORT).accepted == 4
    assert storage.count_readings() == 83
    seqs = [r[0] for r in query(storage, "SELECT seq FROM readings ORDER BY seq")]
    assert seqs == list(range(1, 84))


def test_seqs_are_per_gateway(storage: Storage) -> None:
    g1, f1 = gateway(storage, "gw-01")
    g2, f2 = gateway(storage, "gw-02")
    assert storage.store_batch(g1, f1, readings(range(1, 11)), REPORT).accepted == 10
    assert storage.store_batch(g2, f2, readings(range(1, 11)), REPORT).accepted == 10
    assert storage.count_readings() == 20
    assert storage.count_readings(g1) == storage.count_readings(g2) == 10
    # Same factory, same key: one sensor.
    assert len(storage.list_sensors()) == 1


def test_sensors_are_per_factory(storage: Storage) -> None:
    g1, f1 = gateway(storage, "gw-01", "acme")
    g2, f2 = gateway(storage, "gw-02", "globex")
    storage.store_batch(g1, f1, readings(range(1, 3)), REPORT)
    storage.store_batch(g2, f2, readings(range(1, 3)), REPORT)
    assert len(storage.list_sensors(key="l1/m1/temp")) == 2
    assert len(storage.list_sensors(key="l1/m1/temp", factory_id=f1)) == 1


def test_model_is_created_on_first_data(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    batch = [*readings(range(1, 3), "l1/press/temp"), *readings(range(3, 5), "l2/press/rpm")]
    storage.store_batch(gid, fid, batch, REPORT)
    machines = storage.list_machines(fid)
    assert {(m["line"], m["name"]) for m in machines} == {("l1", "press"), ("l2", "press")}
    sensors = {s["key"]: s for s in storage.list_sensors()}
    assert set(sensors) == {"l1/press/temp", "l2/press/rpm"}
    assert sensors["l1/press/temp"]["unit"] == "C"
    assert sensors["l1/press/temp"]["machine"] == "press"


def test_failed_batch_leaves_nothing(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    gid, fid = gateway(storage, "gw-01")
    batch = readings(range(1, 6), "l9/new/sensor")

    class Boom(Exception):
        pass

    real = storage._insert_readings  # type: ignore[attr-defined]

    def insert_then_fail(conn: object, rows: object) -> int:
        real(conn, rows)  # the readings (and the new sensor before them) are written...
        raise Boom  # ...and the batch fails before it ends: all of it must roll back

    monkeypatch.setattr(storage, "_insert_readings", insert_then_fail)
    with pytest.raises(Boom):
        storage.store_batch(gid, fid, batch, REPORT)
    monkeypatch.undo()
    assert storage.count_readings() == 0
    assert storage.list_sensors() == []
    assert storage.get_gateway("gw-01")["last_seen"] is None  # type: ignore[index]
    # The in-memory sensor cache must not remember the rolled-back sensor.
    storage.store_batch(gid, fid, batch, REPORT)
    assert storage.count_readings() == 5
    assert len(storage.list_sensors()) == 1


def test_gateway_report_is_recorded(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    assert storage.get_gateway("gw-01")["last_seen"] is None  # type: ignore[index]
    storage.store_batch(gid, fid, [], GatewayReport(12, 3, 4, "0.1.0"))
    row = storage.get_gateway("gw-01")
    assert row is not None
    assert (row["backlog"], row["dropped"], row["dead_letters"], row["agent_version"]) == (
        12,
        3,
        4,
        "0.1.0",
    )
    assert row["last_seen"] is not None


def test_add_gateway_conflict_and_rotate(storage: Storage) -> None:
    storage.add_gateway("gw-01", "acme", hash_token("a"))
    with pytest.raises(Conflict):
        storage.add_gateway("gw-01", "acme", hash_token("b"))
    with pytest.raises(Conflict, match="belongs to factory"):
        storage.add_gateway("gw-01", "globex", hash_token("b"), rotate=True)
    storage.add_gateway("gw-01", "acme", hash_token("b"), rotate=True)
    old, new = storage.token_by_hash(hash_token("a")), storage.token_by_hash(hash_token("b"))
    assert old is not None and old.revoked
    assert new is not None and not new.revoked and new.gateway_name == "gw-01"


def test_concurrent_writers_from_threads(storage: Storage) -> None:
    gids = [gateway(storage, f"gw-{i}") for i in range(4)]
    errors: list[BaseException] = []

    def run(gid: int, fid: int) -> None:
        try:
            for lo in range(1, 1001, 100):
                # New sensors in every batch, overlapping between threads: on PostgreSQL the
                # transactions run at once and race to create them.
                batch = readings(range(lo, lo + 100), "l1/m1/x") + readings(
                    range(lo + 5000, lo + 5002), f"l1/m1/s{lo}"
                )
                storage.store_batch(gid, fid, batch, REPORT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=g) for g in gids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert storage.count_readings() == 4 * (1000 + 20)
    assert len(storage.list_sensors()) == 11


def test_queries(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    storage.store_batch(gid, fid, readings(range(1, 121)), REPORT)
    sid = storage.list_sensors()[0]["id"]
    rows = storage.readings(sid, T0 + 10, T0 + 20, 1000)
    assert [r[1] for r in rows] == [T0 + s for s in range(10, 20)]
    assert len(storage.readings(sid, None, None, 5)) == 5
    lo, hi, avg, count, first, last = storage.stats(sid, None, None)
    assert (lo, hi, avg, count) == (1.0, 120.0, 60.5, 120)
    assert (first, last) == (T0 + 1, T0 + 120)
    buckets = storage.series(sid, None, None, 60.0, 1000)
    assert [(b[0], b[4]) for b in buckets] == [(T0 - 20, 39), (T0 + 40, 60), (T0 + 100, 21)]
    assert all(b[0] % 60 == 0 for b in buckets)
    assert storage.series(sid, T0 + 40, T0 + 100, 60.0, 1000)[0][1:] == (40.0, 99.0, 69.5, 60)
    latest = storage.latest(sid)
    assert latest is not None and latest[2] == 120.0
    assert storage.latest(sid + 1) is None
    assert [r[2] for r in storage.last_readings(sid, 3)] == [118.0, 119.0, 120.0]


def test_last_readings_of_a_sparse_sensor_reach_back_past_every_window(
    storage: Storage,
) -> None:
    """The newest readings are looked for back from the sensor's newest: a sensor with fewer
    than asked for in a day, a week or two months (one a month, then a burst) is read
    further back, and the answer is the same as reading all of it."""
    gid, fid = gateway(storage, "gw-01")
    monthly = [
        WireReading(s, "l1/m1/temp", T0 - (6 - s) * 30 * DAY_S, float(s), None) for s in range(1, 6)
    ]
    burst = [WireReading(s, "l1/m1/temp", T0 + s, float(s), None) for s in range(6, 16)]
    assert storage.store_batch(gid, fid, monthly + burst, REPORT).accepted == 15
    sid = storage.list_sensors()[0]["id"]
    values = [float(s) for s in range(1, 16)]
    for n in (1, 10, 11, 13, 15, 50):
        assert [r[2] for r in storage.last_readings(sid, n)] == values[-n:]
        # The same before a moment (an export's window): the readings of seq 1 to 8.
        assert storage.readings_before(sid, T0 + 9, n) == values[:8][-n:]


def test_an_open_range_starts_at_the_oldest_reading_even_past_its_tiers(
    storage: Storage,
) -> None:
    """A range open below starts at the sensor's oldest raw reading, also when retention
    (``hour_days`` equal to ``raw_days``) took the 12-hour row of the oldest half-day first."""
    gid, fid = gateway(storage, "gw-01")
    day = (T0 // DAY_S - 3) * DAY_S
    when = [day + 3600, day + 13 * 3600, T0, T0 + 1]
    batch = [WireReading(s, "l1/m1/temp", ts, float(s), None) for s, ts in enumerate(when)]
    assert storage.store_batch(gid, fid, batch, REPORT).accepted == 4
    sid = storage.list_sensors()[0]["id"]
    with storage._write() as conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM rollup_12h WHERE bucket = ?", (day,))
    assert [r[1] for r in storage.readings(sid, None, None, 10)] == when
    assert [r[1] for r in storage.readings_after(sid, None, None, None, 10)] == when
    assert [r[1] for r in storage.readings(sid, None, T0, 10)] == when[:2]


def test_token_is_stored_hashed(storage: Storage) -> None:
    storage.add_token("read", hash_token("fer_secret"))
    assert query(storage, "SELECT hash FROM tokens") == [(hash_token("fer_secret"),)]
    assert "fer_secret" not in dump(storage)


def _alert(alert_id: int, closed_at: float | None = None, key: str = "l1/m1/temp") -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=80.0,
        value=91.0,
        opened_at=T0,
        closed_at=closed_at,
        reading_seq=alert_id,
    )


def _sensor_id(storage: Storage, key: str) -> int:
    [row] = storage.list_sensors(key=key)
    return int(row["id"])


def test_edge_alerts_upsert_open_then_close_exactly_once(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-a")
    storage.store_batch(gid, fid, readings(range(1, 4)), REPORT, [_alert(7)])
    storage.store_batch(gid, fid, readings(range(1, 4)), REPORT, [_alert(7)])  # re-sent
    storage.store_batch(gid, fid, [], REPORT, [_alert(7, closed_at=T0 + 60)])
    storage.store_batch(gid, fid, [], REPORT, [_alert(7)])  # a late copy of the open
    [alert] = storage.edge_alerts(_sensor_id(storage, "l1/m1/temp"), 10)
    assert (alert["alert_id"], alert["gateway_id"], alert["closed_at"]) == (7, "gw-a", T0 + 60)


def test_edge_alert_for_a_sensor_without_readings_creates_it(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-b")
    storage.store_batch(gid, fid, [], REPORT, [_alert(1, key="l9/m9/new")])
    assert len(storage.edge_alerts(_sensor_id(storage, "l9/m9/new"), 10)) == 1


# -- SQLite only -----------------------------------------------------------------------------


def test_sqlite_creates_parent_dirs_and_wal(tmp_path: Path) -> None:
    s = open_storage(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'hub.db'}")
    s.migrate()
    assert Path(s.path).exists()  # type: ignore[attr-defined]
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # type: ignore[attr-defined]
    assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # type: ignore[attr-defined]
    assert isinstance(s.conn, sqlite3.Connection)  # type: ignore[attr-defined]
    s.close()


def test_sqlite_unwritable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        Storage(str(blocker / "hub.db")).init_schema()


def test_database_of_the_previous_release_upgrades_without_loss(tmp_path: Path) -> None:
    """A hub.db written by the release before the storage package (its schema verbatim in
    tests/hub/data) opens, migrates and answers with every row it held."""
    path = tmp_path / "hub.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA.read_text())
    conn.executescript(
        f"""
        INSERT INTO factories VALUES (1, 'acme', {T0}, 3);
        INSERT INTO machines VALUES (1, 1, 'l1', 'm1', {T0});
        INSERT INTO sensors VALUES (1, 1, 1, 'l1/m1/temp', 'temp', 'C', 1.0, 90.0, 0.5, {T0});
        INSERT INTO gateways VALUES (1, 'gw-01', 1, {T0}, {T0 + 5}, 7, 2, 1, '0.1.0', 0);
        INSERT INTO tokens VALUES (1, '{hash_token("gw")}', 'gateway', 1, {T0}, 0);
        INSERT INTO tokens VALUES (2, '{hash_token("rd")}', 'read', NULL, {T0}, 1);
        INSERT INTO readings VALUES ({(1 << 40) + 1}, 1, {T0 + 1}, 20.5, 1, 1);
        INSERT INTO readings VALUES ({(1 << 40) + 2}, 1, {T0 + 2}, 95.0, 1, 2);
        INSERT INTO anomaly_scans VALUES (1, {T0 + 9}, 'zscore', 2.0, 2, '{{"mean": 57.75}}');
        INSERT INTO anomalies VALUES (1, 1, {(1 << 40) + 2}, {T0 + 2}, 95.0, 2.5, 1, 'zscore',
            2.0, {T0 + 9});
        INSERT INTO edge_alerts VALUES (1, 1, 4, 1, 'threshold', 'above_maximum', 'high',
            90.0, 95.0, {T0 + 2}, NULL, 2, {T0 + 3});
        """
    )
    conn.close()
    s = open_storage(f"sqlite:///{path}")
    s.migrate()
    record = s.token_by_hash(hash_token("gw"))
    assert record is not None and not record.revoked and record.gateway_name == "gw-01"
    read = s.token_by_hash(hash_token("rd"))
    assert read is not None and read.revoked
    assert s.readings(1, None, None, 10) == [
        ((1 << 40) + 1, T0 + 1, 20.5),
        ((1 << 40) + 2, T0 + 2, 95.0),
    ]
    assert s.gateway_config("gw-01") == (
        3,
        [{"key": "l1/m1/temp", "min": 1.0, "max": 90.0, "deadband": 0.5}],
    )
    gw = s.get_gateway("gw-01")
    assert gw is not None and (gw["backlog"], gw["dropped"], gw["dead_letters"]) == (7, 2, 1)
    assert [a["alert_id"] for a in s.edge_alerts(1, 10)] == [4]
    assert [a["reading_id"] for a in s.stored_anomalies(1, 10)] == [(1 << 40) + 2]
    scan = s.anomaly_scan(1)
    assert scan is not None and scan["statistics"] == {"mean": 57.75}
    # And it takes new data where the old release left off, without doubling.
    result = s.store_batch(1, 1, readings(range(1, 5)), REPORT)
    assert (result.accepted, result.duplicates, result.config_version) == (2, 2, 3)
    s.close()


# -- PostgreSQL only -------------------------------------------------------------------------


@pytest.fixture
def pg(pg_server: object) -> Storage:
    from tests.pg import PgServer

    assert isinstance(pg_server, PgServer)
    s = open_storage(pg_server.create_database())
    s.migrate()
    yield s  # type: ignore[misc]
    s.close()


def partitions(storage: Storage) -> list[str]:
    return [
        r[0]
        for r in query(
            storage,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass ORDER BY 1",
        )
    ]


def test_pg_partitions_are_made_ahead_and_there_is_no_default(pg: Storage) -> None:
    names = partitions(pg)
    today = day_of(now())
    assert [partition_name(d) for d in range(today - 1, today + 8)] == names
    default = query(
        pg,
        "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'readings' AND p.partdefid <> 0",
    )
    assert default == [(0,)]


def test_pg_late_data_gets_its_partitions_before_it_lands(pg: Storage) -> None:
    """A back-fill of readings from two years ago, spread over three days: each day gets its
    partition, and the rows land there (not in some catch-all)."""
    gid, fid = gateway(pg, "gw-01")
    old = (day_of(now()) - 730) * DAY_S + 1.0
    batch = [WireReading(i, "l1/m1/t", old + i * DAY_S / 2, float(i), None) for i in range(6)]
    assert pg.store_batch(gid, fid, batch, REPORT).accepted == 6
    days = sorted({day_of(r.ts) for r in batch})
    assert len(days) == 3
    assert set(map(partition_name, days)) <= set(partitions(pg))
    placed = query(
        pg, "SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1 ORDER BY 1"
    )
    assert placed == [(partition_name(d), 2) for d in days]
    # Re-sent after the outage: nothing doubles, across partitions too.
    assert pg.store_batch(gid, fid, batch, REPORT).accepted == 0


def test_pg_partition_dropped_elsewhere_is_remade(pg: Storage) -> None:
    """Another hub process dropped a partition this one remembers (retention): the batch
    still lands, in a partition made again."""
    gid, fid = gateway(pg, "gw-01")
    ts = now() - 30 * DAY_S
    pg.store_batch(gid, fid, [WireReading(1, "l1/m1/t", ts, 1.0, None)], REPORT)
    with psycopg.connect(pg.url, autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP TABLE "{partition_name(day_of(ts))}"')
    assert pg.store_batch(gid, fid, [WireReading(2, "l1/m1/t", ts, 2.0, None)], REPORT).accepted
    assert pg.count_readings() == 1


def test_pg_queries_use_the_sensor_time_index(pg: Storage) -> None:
    gid, fid = gateway(pg, "gw-01")
    pg.store_batch(gid, fid, readings(range(1, 2001), t0=now() - 3000), REPORT)
    with psycopg.connect(pg.url, autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute("ANALYZE readings")
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id, ts, value FROM readings WHERE sensor_id = 1 "
                "AND ts >= %s AND ts < %s ORDER BY ts, id LIMIT 10",
                (now() - 2000, now()),
            )
        )
    assert "readings_sensor_ts" in plan or "sensor_id_ts_idx" in plan, plan


def test_one_process_leads_a_job(database_url: str) -> None:
    """Storage.try_lead: one hub process at a time runs a job, until it closes (or dies)."""
    a, b = open_storage(database_url), open_storage(database_url)
    a.migrate()
    assert a.try_lead("job") and a.try_lead("job")  # held: asking again keeps it
    assert not b.try_lead("job")
    assert b.try_lead("other-job")  # per job
    a.close()
    assert b.try_lead("job")
    b.close()


def test_stored_batches_queue_their_sensors_for_the_scan(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    storage.store_batch(gid, fid, readings(range(1, 5), "l/m/a"), REPORT)
    storage.store_batch(gid, fid, readings(range(5, 9), "l/m/b"), REPORT)
    storage.store_batch(gid, fid, readings(range(9, 12), "l/m/a"), REPORT)
    ids = sorted(s["id"] for s in storage.list_sensors())
    assert storage.take_scan_queue(1) == ids[:1]
    assert storage.take_scan_queue(10) == ids[1:]
    assert storage.take_scan_queue(10) == []
    storage.requeue_scans(ids)
    assert storage.take_scan_queue(10) == ids


def test_previous_release_database_missing_a_table_is_healed(tmp_path: Path) -> None:
    """Releases before numbered migrations made missing tables at every start (CREATE TABLE
    IF NOT EXISTS) without a version bump: a version-2 file may lack one, and gets it."""
    path = tmp_path / "hub.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA.read_text())
    conn.executescript("DROP TABLE edge_alerts; DROP TABLE anomalies;")
    conn.close()
    s = open_storage(f"sqlite:///{path}")
    s.migrate()
    gid, fid = gateway(s, "gw-01")
    s.store_batch(gid, fid, readings(range(1, 3)), REPORT, [_alert(1)])
    assert len(s.edge_alerts(_sensor_id(s, "l1/m1/temp"), 10)) == 1
    assert s.stored_anomalies(_sensor_id(s, "l1/m1/temp"), 10) == []
    s.close()


def test_pg_rollup_tiers_leave_room_for_hot_updates(pg: Storage) -> None:
    from hub.storage.postgres.schema import ROLLUP_FILLFACTOR
    from hub.storage.rollups import TIERS

    options = dict(
        query(
            pg,
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class WHERE relname = ANY(?)",
            ([t.table for t in TIERS],),
        )
    )
    assert {t.table: f"fillfactor={ROLLUP_FILLFACTOR}" for t in TIERS}.items() <= options.items()


def test_pg_last_readings_read_only_the_newest_days(pg: Storage) -> None:
    """An anomaly scan's window of a sensor reads the days it lies in, not every day kept:
    each would cost an index probe (8.7 ms for a sensor with three years of days), and a
    day held by maintenance (here its lock, as VACUUM FULL takes it) would hold up the scan."""
    gid, fid = gateway(pg, "gw-01")
    old = T0 - 30 * DAY_S
    batch = [WireReading(1, "l1/m1/t", old, 1.0, None)]
    batch += [WireReading(s, "l1/m1/t", T0 + s, float(s), None) for s in range(2, 202)]
    assert pg.store_batch(gid, fid, batch, REPORT).accepted == 201
    sid = pg.list_sensors()[0]["id"]
    done, got = beside_a_lock(
        pg.url,  # type: ignore[attr-defined]
        partition_name(day_of(old)),
        lambda: pg.last_readings(sid, 100),
    )
    assert done, "the newest readings waited on a day a month older"
    assert [r[2] for r in got] == [float(s) for s in range(102, 202)]


def test_pg_an_open_range_reads_only_the_days_of_the_sensor(pg: Storage) -> None:
    """A page of raw readings with no start reads from the sensor's first day on, not from
    every day kept: a day held by maintenance a month before the sensor existed does not
    hold it up."""
    gid, fid = gateway(pg, "gw-01")
    old = T0 - 30 * DAY_S
    pg.before_readings([old])
    batch = [WireReading(s, "l1/m1/t", T0 + s, float(s), None) for s in range(50)]
    assert pg.store_batch(gid, fid, batch, REPORT).accepted == 50
    sid = pg.list_sensors()[0]["id"]
    done, got = beside_a_lock(
        pg.url,  # type: ignore[attr-defined]
        partition_name(day_of(old)),
        lambda: pg.readings(sid, None, None, 10),
    )
    assert done, "the sensor's first readings waited on a day a month older"
    assert [r[2] for r in got] == [float(s) for s in range(10)]

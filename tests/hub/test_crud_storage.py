"""Storage side of the model's CRUD, on both engines: what a sensor's deletion takes with it,
and the paged lists' totals."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.stack import wait_for
from hub.storage import Conflict, GatewayReport, Storage, open_storage
from hub.storage.audit import Actor
from hub.storage.bulk import UnknownSensors
from hub.storage.crud import Unknown
from hub.storage.interface import Storage as SqlStorage
from hub.storage.sqlite.schema import MIGRATIONS
from shared.wire import WireAlert, WireReading
from tests.hub.conftest import engine_of, query

ADMIN = Actor(1, "admin")
T0 = 1_700_000_000.0
REPORT = GatewayReport(0, 0, 0, "test")
SENSOR_TABLES = (
    "readings",
    "bulk_keys",
    "rollup_1m",
    "rollup_1h",
    "rollup_12h",
    "edge_alerts",
    "alerts",
    "anomalies",
    "alert_rules",
    "service_periods",
)


def rows_of(storage: Storage, table: str, sensor_id: int) -> int:
    return int(
        query(storage, f"SELECT count(*) FROM {table} WHERE sensor_id = ?", (sensor_id,))[0][0]
    )


def test_deleting_a_sensor_takes_all_its_data(storage: Storage) -> None:
    gateway_row = storage.add_gateway("gw-1", "acme", "hash-1")
    gateway = storage.get_gateway("gw-1")
    assert gateway is not None
    factory_id = gateway["factory_id"]
    machine = storage.create_machine(
        {"factory_id": factory_id, "line": "l", "name": "m", "type": None, "status": "OPERATIONAL"},
        ADMIN,
    )
    sensor = storage.create_sensor(
        {"machine_id": machine["id"], "name": "t", "unit": "C", "max_threshold": 5.0}, ADMIN
    )
    keep = storage.create_sensor({"machine_id": machine["id"], "name": "other"}, ADMIN)
    sid = sensor["id"]
    # Data arrives for the sensor's key: it lands on the sensor made before it.
    readings = [WireReading(i, "l/m/t", T0 + 30 * i, float(i)) for i in range(1, 200)]
    readings += [WireReading(1000 + i, "l/m/other", T0 + i, 1.0) for i in range(5)]
    alert = WireAlert(
        id=1,
        key="l/m/t",
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=5.0,
        value=9.0,
        opened_at=T0 + 200,
    )
    storage.store_batch(gateway_row, factory_id, readings, REPORT, [alert])
    storage.bulk_insert([(sid, T0 - 60.0 * i, 2.0) for i in range(1, 50)], ADMIN)
    assert storage.service.take_out(sid, ADMIN, "recalibration") is not None
    before = {t: rows_of(storage, t, sid) for t in SENSOR_TABLES}
    assert before["readings"] == 199 + 49
    assert before["bulk_keys"] == 49
    assert before["rollup_1m"] > 0 and before["rollup_1h"] > 0
    assert before["edge_alerts"] == before["alerts"] == before["service_periods"] == 1
    version = storage.gateway_config("gw-1")
    assert version is not None

    removed = storage.delete_sensor(sid, ADMIN)
    assert removed is not None and removed["readings"] == 248
    assert {t: rows_of(storage, t, sid) for t in SENSOR_TABLES} == dict.fromkeys(SENSOR_TABLES, 0)
    assert storage.get_sensor(sid) is None
    # The other sensor keeps everything; the gateways are told to fetch their config again.
    assert storage.stats(keep["id"], None, None)[3] == 5
    after = storage.gateway_config("gw-1")
    assert after is not None and after[0] > version[0]
    assert storage.delete_sensor(sid, ADMIN) is None


ORPHAN_TABLES = ("readings", "rollup_1m", "rollup_1h", "rollup_12h", "edge_alerts", "alerts")


def orphans(storage: Storage) -> dict[str, int]:
    """Rows per table whose sensor is gone: stored, yet no read can ever reach them."""
    return {
        t: int(
            query(
                storage,
                f"SELECT count(*) FROM {t} x WHERE x.sensor_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM sensors s WHERE s.id = x.sensor_id)",
            )[0][0]
        )
        for t in ORPHAN_TABLES
    }


def lock_waiters(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def beside_a_lock(database_url: str, table: str, work: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``work`` in a thread while another connection holds ``table`` ACCESS EXCLUSIVE
    (as VACUUM FULL or a plain DETACH would); (whether it finished without waiting on that
    lock, what it returned)."""
    got: list[Any] = []
    with psycopg.connect(database_url) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=lambda: got.append(work()))
        thread.start()
        wait_for(
            "the work to finish or wait on the lock",
            lambda: not thread.is_alive() or lock_waiters(database_url) > 0,
            60,
        )
        done = not thread.is_alive()
        conn.rollback()
    thread.join(60)
    assert got, "the work failed"
    return done, got[0]


def hold_inside(
    storage: Storage, method: str, paused: threading.Event, go: threading.Event
) -> None:
    """Make ``storage.method`` (called inside a write transaction) stop there until ``go``."""
    original = getattr(storage, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        paused.set()
        assert go.wait(60)
        return result

    setattr(storage, method, held)


@pytest.mark.parametrize("first", ["ingest", "delete"])
@pytest.mark.parametrize("writer", ["sync", "bulk"])
def test_a_batch_and_its_sensors_deletion_never_interleave(
    database_url: str, writer: str, first: str
) -> None:
    """Two hub processes: one stores readings for a sensor (a gateway's sync batch, or an
    admin's back-fill) while the other deletes it. Whichever starts first, the other runs
    entirely before or after it, and no reading or rollup outlives its sensor. On PostgreSQL
    the second waits on the first's row lock; SQLite lets one writer in at a time, so there
    the second cannot start before the first commits."""
    ingester, deleter = open_storage(database_url), open_storage(database_url)
    ingester.migrate()
    try:
        gateway_row = ingester.add_gateway("gw-race", "acme", "hash-race")
        gateway = ingester.get_gateway("gw-race")
        assert gateway is not None
        factory_id = gateway["factory_id"]
        # Both know the sensor; the ingester has its id cached, as after any earlier batch.
        ingester.store_batch(gateway_row, factory_id, [WireReading(1, "l/m/t", T0, 1.0)], REPORT)
        sid = ingester.sensors_page(0, 10, key="l/m/t")[0][0]["id"]
        batch = [WireReading(i, "l/m/t", T0 + 86_400 + i, float(i)) for i in range(2, 50)]
        # The batch's day partition first (PostgreSQL): made during the race, its DDL would
        # wait for the deletion's lock on readings and keep the two apart by chance.
        assert isinstance(ingester, SqlStorage)
        ingester.before_readings([r.ts for r in batch])
        paused, go = threading.Event(), threading.Event()
        failed: list[BaseException] = []

        def run(call: Callable[[], object]) -> threading.Thread:
            def target() -> None:
                try:
                    call()
                except BaseException as exc:  # reported by the asserts below
                    failed.append(exc)

            thread = threading.Thread(target=target)
            thread.start()
            return thread

        def ingest() -> object:
            if writer == "bulk":
                return ingester.bulk_insert([(sid, r.ts, r.value) for r in batch], ADMIN)
            return ingester.store_batch(gateway_row, factory_id, batch, REPORT)

        def delete() -> object:
            return deleter.delete_sensor(sid, ADMIN)

        if first == "ingest":
            hold_inside(ingester, "_insert_readings", paused, go)  # its readings are in
            one, other = ingest, delete
        else:
            hold_inside(deleter, "delete_rollups", paused, go)  # its readings are gone
            one, other = delete, ingest
        t1 = run(one)
        assert paused.wait(60)
        t2 = run(other)
        if engine_of(ingester) == "postgresql":
            # Waiting on the first's lock, or, without one, done before the first commits.
            wait_for(
                "the second transaction to wait or finish",
                lambda: not t2.is_alive() or lock_waiters(database_url) > 0,
                timeout=60,
            )
        go.set()
        t1.join(60)
        t2.join(60)
        assert not t1.is_alive() and not t2.is_alive()
        if writer == "bulk" and first == "delete":
            # A back-fill names its sensor by id: once deleted, there is none to fill.
            assert [type(e) for e in failed] == [UnknownSensors]
        else:
            assert failed == []
        assert orphans(ingester) == dict.fromkeys(ORPHAN_TABLES, 0)
        assert ingester.get_sensor(sid) is None
        now_sensors = ingester.sensors_page(0, 10, key="l/m/t")[0]
        if first == "ingest":
            # Deleted after the batch committed: with all of it.
            assert now_sensors == []
        elif writer == "sync":
            # Stored after the deletion committed: a new sensor, as on first data, holds it all.
            assert len(now_sensors) == 1 and now_sensors[0]["id"] != sid
            assert ingester.stats(now_sensors[0]["id"], None, None)[3] == len(batch)
    finally:
        ingester.close()
        deleter.close()


def test_parents_children_and_names(storage: Storage) -> None:
    f = storage.create_factory("north", "Oslo", ADMIN)
    with pytest.raises(Unknown) as unknown:
        storage.create_machine(
            {"factory_id": 999, "line": "l", "name": "m", "type": None, "status": "OPERATIONAL"},
            ADMIN,
        )
    assert unknown.value.field == "factory_id"
    m = storage.create_machine(
        {"factory_id": f["id"], "line": "l", "name": "m", "type": "X", "status": "OPERATIONAL"},
        ADMIN,
    )
    with pytest.raises(Unknown):
        storage.create_sensor({"machine_id": 999, "name": "s"}, ADMIN)
    storage.create_sensor({"machine_id": m["id"], "name": "s"}, ADMIN)
    with pytest.raises(Conflict):
        storage.delete_machine(m["id"], ADMIN)
    with pytest.raises(Conflict):
        storage.delete_factory(f["id"], ADMIN)
    with pytest.raises(Conflict):
        storage.update_machine(m["id"], {"line": "other"}, ADMIN)
    renamed = storage.update_factory(f["id"], {"name": "south"}, ADMIN)
    assert renamed is not None and renamed["name"] == "south"
    storage.create_factory("east", None, ADMIN)
    with pytest.raises(Conflict):
        storage.update_factory(f["id"], {"name": "east"}, ADMIN)
    assert storage.update_factory(12345, {"name": "x"}, ADMIN) is None


def test_pages_count_what_they_filter(storage: Storage) -> None:
    ids = [storage.create_factory(f"f{i}", None, ADMIN)["id"] for i in range(5)]
    rows, total = storage.factories_page(2, 2)
    assert total == 5 and [r["id"] for r in rows] == ids[2:4]
    for i in range(3):
        storage.create_machine(
            {
                "factory_id": ids[0],
                "line": "l",
                "name": f"m{i}",
                "type": None,
                "status": "OPERATIONAL",
            },
            ADMIN,
        )
    rows, total = storage.machines_page(ids[0], 0, 2)
    assert total == 3 and len(rows) == 2
    assert storage.machines_page(ids[1], 0, 10) == ([], 0)
    assert storage.sensors_page(0, 10, key="no/such/key") == ([], 0)


def test_a_deleted_sensors_id_is_never_handed_out_again(storage: Storage) -> None:
    f = storage.create_factory("ids", None, ADMIN)
    m = storage.create_machine(
        {"factory_id": f["id"], "line": "l", "name": "m", "type": None, "status": "OPERATIONAL"},
        ADMIN,
    )
    first = storage.create_sensor({"machine_id": m["id"], "name": "a"}, ADMIN)["id"]
    assert storage.delete_sensor(first, ADMIN) is not None
    again = storage.create_sensor({"machine_id": m["id"], "name": "a"}, ADMIN)["id"]
    assert again != first


def test_upgrading_an_sqlite_database_keeps_its_sensors(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    with conn:
        for step in MIGRATIONS[:4]:
            step.apply(conn)
        conn.execute(f"PRAGMA user_version={MIGRATIONS[3].version}")
        conn.execute("INSERT INTO factories (id, name, created_at) VALUES (1, 'f', 0)")
        conn.execute(
            "INSERT INTO machines (id, factory_id, line, name, created_at) "
            "VALUES (1, 1, 'l', 'm', 0)"
        )
        conn.execute(
            "INSERT INTO sensors (id, machine_id, factory_id, key, name, unit, max_threshold, "
            "created_at) VALUES (9, 1, 1, 'l/m/s', 's', 'C', 3.5, 0)"
        )
    conn.close()
    storage = open_storage(str(path))
    try:
        storage.migrate()
        sensor = storage.get_sensor(9)
        assert sensor is not None
        assert (sensor["key"], sensor["unit"], sensor["max_threshold"]) == ("l/m/s", "C", 3.5)
        assert storage.sensors_page(0, 10, key="l/m/s")[1] == 1
        assert storage.delete_sensor(9, ADMIN) is not None
        new = storage.create_sensor({"machine_id": 1, "name": "s"}, ADMIN)
        assert new["id"] > 9 and new["key"] == "l/m/s"
    finally:
        storage.close()

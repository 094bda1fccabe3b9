"""Storage: each (gateway, seq) stored exactly once; a batch is all or nothing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hub.auth import hash_token
from hub.storage import Conflict, GatewayReport, Storage, StorageError
from shared.wire import WireAlert, WireReading

REPORT = GatewayReport(backlog=0, dropped=0, dead_letters=0, agent_version="t")


def readings(seqs: range, key: str = "l1/m1/temp") -> list[WireReading]:
    return [WireReading(s, key, 1_700_000_000.0 + s, float(s), "C") for s in seqs]


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage(str(tmp_path / "sub" / "dir" / "hub.db"))
    s.init_schema()
    yield s
    s.close()


def gateway(storage: Storage, name: str, factory: str = "acme") -> tuple[int, int]:
    gid = storage.add_gateway(name, factory, hash_token(name))
    record = storage.token_by_hash(hash_token(name))
    assert record is not None and record.factory_id is not None
    return gid, record.factory_id


def test_creates_parent_dirs_and_wal(storage: Storage) -> None:
    assert Path(storage.path).exists()
    assert storage.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert storage.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert storage.ping()


def test_init_schema_is_repeatable(storage: Storage) -> None:
    storage.init_schema()
    storage.init_schema()


def test_newer_schema_is_refused(storage: Storage) -> None:
    storage.conn.execute("PRAGMA user_version=99")
    with pytest.raises(StorageError, match="schema version 99"):
        storage.init_schema()


def test_same_batch_twice_is_stored_once(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    first = storage.store_batch(gid, fid, readings(range(1, 101)), REPORT)
    second = storage.store_batch(gid, fid, readings(range(1, 101)), REPORT)
    assert (first.accepted, first.duplicates) == (100, 0)
    assert (second.accepted, second.duplicates) == (0, 100)
    assert storage.count_readings() == 100


def test_other_batch_boundaries_over_same_seqs_store_once(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    storage.store_batch(gid, fid, readings(range(1, 51)), REPORT)
    overlap = storage.store_batch(gid, fid, readings(range(40, 80)), REPORT)
    assert (overlap.accepted, overlap.duplicates) == (29, 11)
    for lo in range(1, 100, 7):
        storage.store_batch(gid, fid, readings(range(lo, lo + 7)), REPORT)
    assert storage.count_readings() == 105
    seqs = [r[0] for r in storage.conn.execute("SELECT seq FROM readings ORDER BY seq")]
    assert seqs == list(range(1, 106))


def test_another_gateway_same_seq_is_stored_too(storage: Storage) -> None:
    g1, f1 = gateway(storage, "gw-01")
    g2, f2 = gateway(storage, "gw-02")
    assert f1 == f2
    assert storage.store_batch(g1, f1, readings(range(1, 11)), REPORT).accepted == 10
    assert storage.store_batch(g2, f2, readings(range(1, 11)), REPORT).accepted == 10
    assert storage.count_readings() == 20
    assert storage.count_readings(g1) == storage.count_readings(g2) == 10
    # Same key in the same factory: one sensor, fed by both gateways.
    assert len(storage.list_sensors()) == 1


def test_same_key_in_other_factory_is_another_sensor(storage: Storage) -> None:
    g1, f1 = gateway(storage, "gw-01", "acme")
    g2, f2 = gateway(storage, "gw-02", "globex")
    storage.store_batch(g1, f1, readings(range(1, 3)), REPORT)
    storage.store_batch(g2, f2, readings(range(1, 3)), REPORT)
    assert len(storage.list_sensors(key="l1/m1/temp")) == 2
    assert len(storage.list_sensors(key="l1/m1/temp", factory_id=f1)) == 1


def test_model_is_created_on_first_data(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    batch = readings(range(1, 4), "l1/press/temp") + readings(range(4, 6), "l2/press/rpm")
    storage.store_batch(gid, fid, batch, REPORT)
    machines = storage.list_machines(fid)
    assert {(m["line"], m["name"]) for m in machines} == {("l1", "press"), ("l2", "press")}
    sensors = {s["key"]: s for s in storage.list_sensors()}
    assert set(sensors) == {"l1/press/temp", "l2/press/rpm"}
    assert sensors["l1/press/temp"]["unit"] == "C"
    assert sensors["l1/press/temp"]["machine"] == "press"


def test_failed_batch_leaves_nothing(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    gid, fid = gateway(storage, "gw-01")
    bad = [*readings(range(1, 5), "l9/new/sensor"), WireReading(5, "l9/new/sensor", 1.0, 1.0)]

    class Boom(Exception):
        pass

    def fail(*args: object, **kwargs: object) -> None:
        raise Boom

    # Make the UPDATE after the inserts fail: the sensors and readings must roll back too.
    real = storage._pool._writer
    assert real is not None  # opened by gateway() above

    class Proxy:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def execute(self, sql: str, *a: object) -> object:
            if sql.startswith("UPDATE gateways"):
                fail()
            return real.execute(sql, *a)

    monkeypatch.setattr(storage._pool, "_writer", Proxy())
    with pytest.raises(Boom):
        storage.store_batch(gid, fid, bad, REPORT)
    monkeypatch.undo()
    assert storage.count_readings() == 0
    assert storage.list_sensors() == []
    # The in-memory sensor cache must not remember the rolled-back sensor.
    storage.store_batch(gid, fid, bad, REPORT)
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
                storage.store_batch(gid, fid, readings(range(lo, lo + 100), "l1/m1/x"), REPORT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=g) for g in gids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert storage.count_readings() == 4000
    assert len(storage.list_sensors()) == 1


def test_queries(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-01")
    storage.store_batch(gid, fid, readings(range(1, 121)), REPORT)
    sid = storage.list_sensors()[0]["id"]
    t0 = 1_700_000_000.0
    rows = storage.readings(sid, t0 + 10, t0 + 20, 1000)
    assert [r[1] for r in rows] == [t0 + s for s in range(10, 20)]
    assert len(storage.readings(sid, None, None, 5)) == 5
    lo, hi, avg, count, first, last = storage.stats(sid, None, None)
    assert (lo, hi, avg, count) == (1.0, 120.0, 60.5, 120)
    assert (first, last) == (t0 + 1, t0 + 120)
    buckets = storage.series(sid, None, None, 60.0, 1000)
    assert sum(b[4] for b in buckets) == 120
    assert all(b[0] % 60 == 0 for b in buckets)
    latest = storage.latest(sid)
    assert latest is not None and latest[2] == 120.0
    assert storage.latest(sid + 1) is None


def test_unwritable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        Storage(str(blocker / "hub.db")).init_schema()


def test_token_is_stored_hashed(storage: Storage) -> None:
    storage.add_token("read", hash_token("fer_secret"))
    rows = storage.conn.execute("SELECT hash FROM tokens").fetchall()
    assert rows == [(hash_token("fer_secret"),)]
    dump = "\n".join(storage.conn.iterdump())
    assert "fer_secret" not in dump
    assert isinstance(storage.conn, sqlite3.Connection)


def _alert(alert_id: int, closed_at: float | None = None, key: str = "l1/m1/temp") -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=80.0,
        value=91.0,
        opened_at=1_700_000_000.0,
        closed_at=closed_at,
        reading_seq=alert_id,
    )


def test_edge_alerts_upsert_open_then_close_exactly_once(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-a")
    storage.store_batch(gid, fid, readings(range(1, 4)), REPORT, [_alert(7)])
    storage.store_batch(gid, fid, readings(range(1, 4)), REPORT, [_alert(7)])  # re-sent
    storage.store_batch(gid, fid, [], REPORT, [_alert(7, closed_at=1_700_000_060.0)])
    storage.store_batch(gid, fid, [], REPORT, [_alert(7)])  # a late copy of the open
    sensor_id = storage.conn.execute("SELECT id FROM sensors WHERE key = 'l1/m1/temp'").fetchone()[
        0
    ]
    [alert] = storage.edge_alerts(sensor_id, 10)
    assert (alert["alert_id"], alert["gateway_id"], alert["closed_at"]) == (
        7,
        "gw-a",
        1_700_000_060.0,
    )


def test_edge_alert_for_a_sensor_without_readings_creates_it(storage: Storage) -> None:
    gid, fid = gateway(storage, "gw-b")
    storage.store_batch(gid, fid, [], REPORT, [_alert(1, key="l9/m9/new")])
    sensor_id = storage.conn.execute("SELECT id FROM sensors WHERE key = 'l9/m9/new'").fetchone()[0]
    assert len(storage.edge_alerts(sensor_id, 10)) == 1

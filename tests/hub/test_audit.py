"""The change log (invariant 9): every change made with a person's token is recorded with the
token's id, its role and the time, in the change's own transaction; on both engines."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from hub.storage import Conflict, Storage
from hub.storage.audit import Actor, AuditEntry, write_entry
from tests.hub.conftest import HubProcess, query
from tests.hub.test_api import assert_error, get

API = "/api/v1"
ADMIN = Actor(7, "admin")


def test_a_change_and_its_row_commit_together(storage: Storage) -> None:
    storage.create_factory("f1", None, ADMIN)
    with pytest.raises(Conflict):
        storage.create_factory("f1", "again", ADMIN)
    rows, total = storage.audit_page(0, 10)
    assert total == 1
    assert (rows[0]["action"], rows[0]["token_id"], rows[0]["role"]) == (
        "factory.create",
        7,
        "admin",
    )

    # A row written inside a transaction that fails goes with it.
    class Boom(Exception):
        pass

    with pytest.raises(Boom), storage._write() as conn:  # type: ignore[attr-defined]
        write_entry(conn, AuditEntry(ADMIN, "x.y", "factory", "1"))
        raise Boom
    assert storage.audit_page(0, 10)[1] == 1


def test_filters_order_and_bounds(storage: Storage) -> None:
    f = storage.create_factory("f2", None, ADMIN)
    m = storage.create_machine(
        {"factory_id": f["id"], "line": "l", "name": "m", "type": None, "status": "OPERATIONAL"},
        Actor(8, "admin"),
    )
    storage.record_audit(AuditEntry(Actor(9, "operator"), "alert.ack", "alert", "42", {"c": "ok"}))
    storage.record_audit(AuditEntry(ADMIN, "big", "factory", "1", {"blob": "x" * 100_000}))
    rows, total = storage.audit_page(0, 10)
    assert total == 4
    assert [r["action"] for r in rows] == ["big", "alert.ack", "machine.create", "factory.create"]
    assert rows[0]["detail"] == {"truncated": True, "fields": ["blob"]}
    assert storage.audit_page(0, 10, target="machine", target_id=str(m["id"]))[1] == 1
    by_operator, n = storage.audit_page(0, 10, token_id=9)
    assert n == 1 and by_operator[0]["detail"] == {"c": "ok"}
    assert [r["action"] for r in storage.audit_page(1, 2)[0]] == ["alert.ack", "machine.create"]
    at = rows[1]["at"]
    assert storage.audit_page(0, 10, start=at, end=at + 0.0001)[1] >= 1
    assert query(storage, "SELECT count(*) FROM audit_log")[0][0] == 4


def entries(hub: HubProcess, **params: Any) -> list[dict[str, Any]]:
    r = get(hub, f"{API}/audit", who="admin", per_page=1000, **params)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_api_changes_are_in_the_log(hub: HubProcess) -> None:
    with hub.client("admin") as c:
        f = c.post(f"{API}/factories", json={"name": "audited"}).json()["data"]
        c.patch(f"{API}/factories/{f['id']}", json={"location": "Turin"}).raise_for_status()
        m = c.post(f"{API}/machines", json={"factory_id": f["id"], "line": "a", "name": "b"})
        s = c.post(f"{API}/sensors", json={"machine_id": m.json()["data"]["id"], "name": "t"})
        sid = s.json()["data"]["id"]
        c.put(f"{API}/sensors/{sid}/thresholds", json={"min": 1, "max": 9}).raise_for_status()
        c.delete(f"{API}/sensors/{sid}").raise_for_status()
        # A refused change leaves no row.
        assert c.post(f"{API}/factories", json={"name": "audited"}).status_code == 409
    log = entries(hub, target="factory", target_id=str(f["id"]))
    assert [e["action"] for e in log] == ["factory.update", "factory.create"]
    assert log[0]["detail"] == {"location": "Turin"}
    assert log[0]["by"]["role"] == "admin"
    assert isinstance(log[0]["by"]["token_id"], int)
    sensor_log = entries(hub, target="sensor", target_id=str(sid))
    assert [e["action"] for e in sensor_log] == [
        "sensor.delete",
        "sensor.thresholds",
        "sensor.create",
    ]
    assert sensor_log[1]["detail"]["max"] == 9.0
    mine = entries(hub, token_id=log[0]["by"]["token_id"])
    assert {e["action"] for e in mine} >= {"factory.create", "sensor.thresholds"}
    assert all(e["at"].endswith("Z") for e in mine)


@contextlib.contextmanager
def audit_writes_fail(database: str, action: str) -> Iterator[None]:
    """While inside: the database refuses every audit row of ``action`` (a trigger), as a
    full disk or a broken constraint would."""
    if database.startswith("sqlite:///"):
        conn = sqlite3.connect(database.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute(
            "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log "
            f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'audit write failed'); END"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER audit_fails")
            conn.close()
        return
    with psycopg.connect(database, autocommit=True) as pg:
        pg.execute(
            "CREATE FUNCTION audit_fails() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit write failed'; END $$"
        )
        pg.execute(
            "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log FOR EACH ROW "
            f"WHEN (NEW.action = '{action}') EXECUTE FUNCTION audit_fails()"
        )
        try:
            yield
        finally:
            pg.execute("DROP TRIGGER audit_fails ON audit_log")
            pg.execute("DROP FUNCTION audit_fails()")


def test_a_threshold_change_and_its_row_commit_together(hub: HubProcess, hub_database: str) -> None:
    with hub.client("admin") as c:
        f = c.post(f"{API}/factories", json={"name": "thresholds-audited"}).json()["data"]
        m = c.post(f"{API}/machines", json={"factory_id": f["id"], "line": "a", "name": "b"})
        s = c.post(f"{API}/sensors", json={"machine_id": m.json()["data"]["id"], "name": "t"})
        sid = s.json()["data"]["id"]
        path = f"{API}/sensors/{sid}/thresholds"
        c.put(path, json={"min": 1, "max": 9}).raise_for_status()
        with audit_writes_fail(hub_database, "sensor.thresholds"):
            refused = c.put(path, json={"min": 2, "max": 8, "deadband": 0.5})
        assert refused.status_code == 500, refused.text
        assert refused.json()["error"]["code"] == "internal"
        # The change went with its row: the sensor keeps what the last audited PUT set.
        sensor = c.get(f"{API}/sensors/{sid}").json()["data"]
        assert sensor["thresholds"] == {"min": 1.0, "max": 9.0, "deadband": 0.0}
        c.put(path, json={"min": 3, "max": 7}).raise_for_status()
    log = entries(hub, target="sensor", target_id=str(sid))
    changes = [e["detail"] for e in log if e["action"] == "sensor.thresholds"]
    assert changes == [
        {"min": 3.0, "max": 7.0, "deadband": 0.0},
        {"min": 1.0, "max": 9.0, "deadband": 0.0},
    ]


def test_only_admins_read_the_log(hub: HubProcess) -> None:
    assert_error(get(hub, f"{API}/audit", who="read"), 403)
    assert_error(get(hub, f"{API}/audit", who="admin", target="x" * 200), 400)

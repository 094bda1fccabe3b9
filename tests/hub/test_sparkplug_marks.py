"""Sparkplug stale/fresh marks from a gateway, on both engines: the latest mark per sensor
wins by its time, whatever order the batches carrying them arrive in."""

from __future__ import annotations

from hub.auth import hash_token
from hub.storage import GatewayReport, Storage
from shared.wire import WireMark, WireReading

REPORT = GatewayReport(backlog=0, dropped=0, dead_letters=0, agent_version="t")
KEYS = ("plant7/edge1/temp", "plant7/pump1/pressure")


def _setup(storage: Storage) -> int:
    storage.add_gateway("gw-sp", "acme", hash_token("gw-sp"))
    record = storage.token_by_hash(hash_token("gw-sp"))
    assert record is not None and record.gateway_id is not None
    assert record.factory_id is not None
    readings = [WireReading(i + 1, k, 1_700_000_000.0, 1.0, None) for i, k in enumerate(KEYS)]
    storage.store_batch(record.gateway_id, record.factory_id, readings, REPORT)
    return record.factory_id


def _stale(storage: Storage) -> dict[str, bool]:
    return {str(s["key"]): bool(s["stale"]) for s in storage.list_sensors()}


def test_marks_set_and_clear_stale_and_an_older_mark_changes_nothing(storage: Storage) -> None:
    fid = _setup(storage)
    assert _stale(storage) == dict.fromkeys(KEYS, False)
    assert storage.apply_marks(fid, [WireMark(k, True, 10.0) for k in KEYS]) == 2
    assert _stale(storage) == dict.fromkeys(KEYS, True)
    # The birth after it.
    storage.apply_marks(fid, [WireMark(KEYS[0], False, 11.0)])
    # A retry of the older death arrives late: changes nothing.
    assert storage.apply_marks(fid, [WireMark(KEYS[0], True, 10.0)]) == 0
    assert _stale(storage) == {KEYS[0]: False, KEYS[1]: True}
    # A key the factory has no sensor for is ignored.
    assert storage.apply_marks(fid, [WireMark("plant7/edge1/nothing", True, 12.0)]) == 0

"""Stale/fresh marks: kept in the buffer across restarts until the hub has them."""

from __future__ import annotations

from pathlib import Path

from agent.buffer import Buffer
from agent.sparkplug.marks import MarkStore
from agent.sparkplug.session import Mark
from shared.wire import Batch, WireMark, decode_batch, encode_batch


def test_marks_survive_a_restart_until_acked(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    store = MarkStore(buffer)
    store.add([Mark(("g/n/a", "g/n/b"), True, 10.0)])
    buffer.close()

    buffer = Buffer(path)
    store = MarkStore(buffer)
    sent = store.pending()
    assert sorted(sent, key=lambda m: m.key) == [
        WireMark("g/n/a", True, 10.0),
        WireMark("g/n/b", True, 10.0),
    ]
    # A birth after the batch was built: the newer mark for g/n/a must outlive the ack.
    store.add([Mark(("g/n/a",), False, 11.0)])
    store.acked(sent)
    assert store.pending() == [WireMark("g/n/a", False, 11.0)]
    buffer.close()
    assert MarkStore(Buffer(path)).pending() == [WireMark("g/n/a", False, 11.0)]


def test_an_older_mark_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    store = MarkStore(Buffer(tmp_path / "b.db"))
    store.add([Mark(("g/n/a",), False, 20.0)])
    store.add([Mark(("g/n/a",), True, 19.0)])
    assert store.pending() == [WireMark("g/n/a", False, 20.0)]


def test_marks_travel_in_the_sync_batch() -> None:
    batch = Batch(gateway_id="gw", readings=[], marks=[WireMark("g/n/a", True, 5.5)])
    assert decode_batch(encode_batch(batch)).marks == [WireMark("g/n/a", True, 5.5)]
    # A batch from an agent without marks decodes with none.
    assert decode_batch(b'{"gateway_id": "gw", "readings": []}').marks == []

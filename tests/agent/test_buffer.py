"""The durable outbox: transactions, seq that is never reused, budget policies, stats."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.buffer import Buffer, DeadLetter, Reading, read_status
from agent.buffer.status import LastSync


def readings(n: int, key: str = "l1/m1/temp", start: float = 0.0) -> list[Reading]:
    now = time.time()
    return [Reading(key, 1_700_000_000 + start + i, float(i), "C", now) for i in range(n)]


def test_append_claim_ack_round_trip(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db")
    dl = DeadLetter("factory/x", b"{bad", "not JSON", time.time())
    res = b.append(readings(5), [dl])
    assert (res.stored, res.dropped, res.full) == (5, 0, False)
    rows = b.claim(3)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].key == "l1/m1/temp" and rows[0].unit == "C" and rows[2].value == 2.0
    assert b.ack([1, 2, 3]) == 3
    assert [r.seq for r in b.claim(10)] == [4, 5]
    st = b.stats()
    assert st.backlog == 2 and st.dead_letters == 1 and st.dropped == 0
    assert st.oldest_unsynced_age_s is not None and st.oldest_unsynced_age_s < 60
    assert b.ack([1, 4]) == 1  # acking twice is harmless
    assert b.backlog == 1
    b.close()


def test_claim_respects_max_bytes(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db")
    b.append(readings(1000))
    assert len(b.claim(1000, max_bytes=10_000)) < 200
    assert len(b.claim(1000, max_bytes=1)) == 1  # always at least one row, or we never move
    b.close()


def test_seq_is_never_reused_after_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    b = Buffer(path)
    b.append(readings(10))
    b.ack([r.seq for r in b.claim(100)])
    assert b.backlog == 0
    b.close()
    b = Buffer(path)
    b.append(readings(1))
    assert [r.seq for r in b.claim(10)] == [11]
    b.close()


def test_backlog_and_counters_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    b = Buffer(path)
    b.append(readings(7), [DeadLetter("t", b"x", "r", time.time())] * 2)
    b.close()
    b = Buffer(path)
    assert b.backlog == 7 and b.dead_letters_total == 2
    b.close()


def test_wal_mode_and_synchronous_normal(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db")
    assert b._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert b._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    b.close()


def test_committed_data_is_visible_to_another_connection(tmp_path: Path) -> None:
    # What a process crash leaves: append returned, so another reader must see the rows.
    b = Buffer(tmp_path / "b.db")
    b.append(readings(3))
    other = sqlite3.connect(tmp_path / "b.db")
    assert other.execute("SELECT count(*) FROM readings").fetchone()[0] == 3
    other.close()
    b.close()


def test_drop_oldest_keeps_within_budget_and_counts(tmp_path: Path) -> None:
    budget = 1_000_000
    b = Buffer(tmp_path / "b.db", max_bytes=budget, when_full="drop_oldest")
    total = 0
    for i in range(60):
        b.append(readings(1000, start=i * 1000))
        total += 1000
        assert b.disk_bytes() <= budget
    assert b.dropped > 0
    assert b.backlog + b.dropped == total
    # the survivors are the newest ones
    rows = b.claim(b.backlog + 10)
    assert rows[-1].seq == total and rows[0].seq == b.dropped + 1
    assert b.stats().dropped == b.dropped
    b.close()


def test_rows_evicted_while_on_the_wire_and_then_confirmed_are_not_dropped(
    tmp_path: Path,
) -> None:
    b = Buffer(tmp_path / "b.db", max_bytes=1_000_000, when_full="drop_oldest")
    b.append(readings(1000))
    on_the_wire = [r.seq for r in b.claim(500)]
    i = 1
    while b.dropped < 200:  # ingest goes on and evicts part of the batch being sent
        b.append(readings(1000, start=i * 1000))
        i += 1
    evicted_from_batch = min(b.dropped, len(on_the_wire))
    before = b.dropped
    # The hub stored the whole batch: what was evicted from it reached the hub after all.
    assert b.ack(on_the_wire) == len(on_the_wire) - evicted_from_batch
    assert b.dropped == before - evicted_from_batch
    assert b.stats().dropped == b.dropped
    b.close()


def test_drop_newest_refuses_and_counts(tmp_path: Path) -> None:
    budget = 1_000_000
    b = Buffer(tmp_path / "b.db", max_bytes=budget, when_full="drop_newest")
    total = 0
    for i in range(60):
        b.append(readings(1000, start=i * 1000))
        total += 1000
        assert b.disk_bytes() <= budget
    assert b.dropped > 0
    assert b.backlog + b.dropped == total
    assert b.claim(1)[0].seq == 1  # the oldest are kept
    # After a sync frees space, new readings are taken again.
    b.ack([r.seq for r in b.claim(b.backlog)])
    assert b.append(readings(100)).stored == 100
    b.close()


def test_block_reports_full_without_writing(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db", max_bytes=1_000_000, when_full="block")
    full = None
    for i in range(60):
        res = b.append(readings(1000, start=i * 1000), [DeadLetter("t", b"x", "r", 0.0)])
        if res.full:
            full = i
            break
    assert full is not None
    before = b.backlog
    assert b.append(readings(1000)).full
    assert b.backlog == before and b.dropped == 0
    assert b.dead_letters_total == full  # the refused transaction wrote nothing
    b.ack([r.seq for r in b.claim(before)])
    assert not b.append(readings(1000)).full
    b.close()


def test_the_wal_is_back_within_its_limit_after_every_commit_while_a_reader_reads(
    tmp_path: Path,
) -> None:
    """The sync's read-ahead reads while the agent writes, so the WAL often cannot start over
    after a checkpoint: without a truncate the next transactions pile onto it until it holds
    more than the budget reserves for it (file + WAL went past a 1 MB budget)."""
    budget = 1_000_000
    b = Buffer(tmp_path / "b.db", max_bytes=budget, when_full="block")
    limit = b.budget.wal_limit
    turns = threading.Semaphore(0)
    done = threading.Event()
    reads = 0

    def read_ahead() -> None:
        # Like the sync's read-ahead: one read per write, while that write goes on.
        nonlocal reads
        while turns.acquire() and not done.is_set():
            b.claim(2000, ahead=True)
            reads += 1

    reader = threading.Thread(target=read_ahead)
    reader.start()
    try:
        seen: list[tuple[int, int]] = []
        for i in range(120):
            turns.release()
            batch = readings(b.txn_readings_cap(readings(1)), start=i * 10_000)
            if b.append(batch).full:
                b.ack([r.seq for r in b.claim(b.backlog // 2)])
            seen.append((b.budget.wal_bytes(), b.disk_bytes()))
    finally:
        done.set()
        turns.release()
        reader.join()
    assert reads > 0
    assert max(wal for wal, _ in seen) <= limit, f"WAL after a commit, limit {limit}: {seen}"
    assert max(disk for _, disk in seen) <= budget
    b.close()


def test_reject_moves_rows_to_dead_letters(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db")
    b.append(readings(3))
    assert b.reject({2: "rejected by hub: value: bad"}) == 1
    assert [r.seq for r in b.claim(10)] == [1, 3]
    reason = b._db.execute("SELECT reason FROM dead_letters").fetchone()[0]
    assert reason == "rejected by hub: value: bad"
    assert b.stats().dead_letters == 1
    b.close()


def test_dead_letters_are_pruned_to_the_newest(tmp_path: Path) -> None:
    b = Buffer(tmp_path / "b.db", max_dead_letters=5)
    for i in range(4):
        b.append([], [DeadLetter("t", str(i).encode(), "r", 0.0)] * 3)
    kept = [r[0] for r in b._db.execute("SELECT payload FROM dead_letters ORDER BY id")]
    assert len(kept) == 5 and kept[-1] == b"3"
    assert b.dead_letters_total == 12
    b.close()


def test_read_status_from_outside(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    b = Buffer(path, max_bytes=5_000_000, when_full="drop_newest")
    b.append(readings(4))
    b.set_state(
        last_sync_at=123.5, last_sync_result="ok", last_sync_accepted=4, last_sync_duplicates=1
    )
    st = read_status(path, 5_000_000, "drop_newest")
    assert st.backlog == 4
    assert st.last_sync == LastSync(at=123.5, result="ok", accepted=4, duplicates=1)
    assert st.mqtt.connected is False
    assert st.buffer.when_full == "drop_newest" and st.buffer.bytes > 0
    b.close()


@settings(max_examples=60, deadline=None)
@given(acked=st.lists(st.integers(min_value=1, max_value=45), max_size=60))
def test_ack_deletes_exactly_the_acked_rows(acked: list[int]) -> None:
    """Acks delete by ranges of consecutive seqs; whatever the seqs (any order, repeats,
    gaps, some never stored), exactly those rows go and the counts follow."""
    with tempfile.TemporaryDirectory() as d:
        b = Buffer(Path(d) / "b.db")
        b.append(readings(40))
        assert b.ack([3, 4, 17]) == 3  # gaps before the acks under test
        stored = set(range(1, 41)) - {3, 4, 17}
        assert b.ack(acked) == len(stored & set(acked))
        left = stored - set(acked)
        assert [r.seq for r in b.claim(100)] == sorted(left)
        assert b.backlog == len(left) == b.stats().backlog
        b.close()


def test_status_json_keeps_its_keys_and_order(tmp_path: Path) -> None:
    """``edge-agent status --json`` is part of the outside contract: the typed Status must
    give exactly the object the dict it replaced gave, key for key and in order."""
    path = tmp_path / "b.db"
    b = Buffer(path, max_bytes=5_000_000, when_full="drop_newest")
    b.append(readings(3))
    b.set_state(
        last_sync_at=1.5,
        last_sync_result="error: x",
        last_sync_error="x",
        recovered_at=2.0,
        recovered_reason="r",
        recovered_moved_to="m",
        recovered_rows_saved=3,
        mqtt_since=4.0,
        rules_version=7,
    )
    b.close()
    doc = read_status(path, 5_000_000, "drop_newest").to_dict()

    def shape(x: object) -> object:
        return {k: shape(v) for k, v in x.items()} if isinstance(x, dict) else type(x).__name__

    expected = {
        "backlog": "int",
        "alerts": {"open": "int", "unsynced": "int", "rules_version": "int"},
        "oldest_unsynced_age_s": "float",
        "dead_letters": "int",
        "dropped": "int",
        "last_sync": {"at": "float", "result": "str", "accepted": "int", "duplicates": "int"},
        "last_sync_error": "str",
        "mqtt": {"connected": "bool", "since": "float"},
        "agent": {"running": "bool", "pid": "NoneType"},
        "buffer": {"path": "str", "bytes": "int", "max_bytes": "int", "when_full": "str"},
        "recovered": {"at": "float", "reason": "str", "moved_to": "str", "rows_saved": "int"},
    }
    assert shape(doc) == expected
    assert list(doc) == list(expected)  # dict equality ignores the order; the JSON does not
    assert doc["alerts"]["rules_version"] == 7 and doc["recovered"]["moved_to"] == "m"
    assert json.loads(json.dumps(doc)) == doc

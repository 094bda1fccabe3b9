"""SQLite's writers across processes: each waits its turn on ``<database>.write.lock``, an
flock the kernel hands to the next writer as soon as the last lets go (SQLite's own busy
handler would poll with sleeps), and the waiting writer then writes as usual.

Two pools on one file stand for two hub processes: flocks of separate descriptors exclude
each other as between processes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from hub.storage.sqlite.pool import SQLitePool


def test_a_writer_waits_for_the_turn_and_then_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.db")
    first, second = SQLitePool(path), SQLitePool(path)
    try:
        with first.write() as conn:
            conn.execute("CREATE TABLE t (v INTEGER)")
        entered = threading.Event()

        def write_second() -> None:
            with second.write() as conn:
                entered.set()
                conn.execute("INSERT INTO t VALUES (2)")

        other = threading.Thread(target=write_second)
        turn = os.open(f"{path}.write.lock", os.O_RDWR)
        try:
            with first.write() as conn:
                conn.execute("INSERT INTO t VALUES (1)")
                other.start()
                # The first writer holds the turn for its whole transaction: nobody else,
                # in this process or another, can take it now.
                with pytest.raises(BlockingIOError):
                    fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
                assert not entered.is_set()
            other.join(timeout=30)
            assert entered.is_set()
            # Both committed, in turn; and the turn is free again.
            with second.reader() as conn:
                assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,)]
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(turn, fcntl.LOCK_UN)
        finally:
            os.close(turn)
    finally:
        first.close()
        second.close()


def test_a_failed_transaction_hands_the_turn_on(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.db")
    first, second = SQLitePool(path), SQLitePool(path)
    try:
        with pytest.raises(RuntimeError), first.write() as conn:
            conn.execute("CREATE TABLE t (v INTEGER)")
            raise RuntimeError("rolled back")
        # Rolled back, and the turn let go: the other pool writes at once.
        with second.write() as conn:
            conn.execute("CREATE TABLE t (v INTEGER)")
    finally:
        first.close()
        second.close()

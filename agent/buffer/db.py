"""The buffer's SQLite connections, its one transaction helper, and the ``state`` table.

Invariants:

* One writer connection, used only from the agent's event loop thread (ingest and sync never
  run a statement at the same time, so no lock is ever contended). Every write goes through
  :func:`transaction`: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception
  (also a failed COMMIT), so a change is all there or not at all.
* Readers (the sync's read-ahead thread, ``edge-agent status``, the metrics scrape) open the
  file read-only: WAL gives them a snapshot while the writer goes on, and they can never
  take a write lock.
* ``[buffer] durability`` picks the writer's ``synchronous``. ``"process"`` (NORMAL in WAL
  mode): a commit survives a process crash but not a power cut; agent/buffer/outbox.py
  (``make_durable``) closes the power-cut hole for seqs sent to the hub. ``"power"`` (FULL):
  every COMMIT fsyncs the WAL before it returns, so what ingest acknowledged after it survives
  a power cut too; one fsync per transaction, i.e. per batch of messages, not per message.
  The one writer connection commits ingest, so the setting covers every ingest commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

BUSY_TIMEOUT_MS = 5000

Durability = Literal["process", "power"]
_SYNCHRONOUS: dict[Durability, str] = {"process": "NORMAL", "power": "FULL"}


def connect(path: Path, wal_limit: int, durability: Durability = "process") -> sqlite3.Connection:
    """The writer connection: WAL, the ``durability``'s sync mode, a WAL kept near
    ``wal_limit`` bytes."""
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (transaction below) so a
    # transaction's extent is visible in the code, not implied by the sqlite3 module's autobegin.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    # Keep the WAL small relative to the budget: it is reused from the start after each
    # checkpoint and truncated back to journal_size_limit, so it never holds much of it.
    db.execute(f"PRAGMA wal_autocheckpoint={max(16, wal_limit // page_size // 2)}")
    db.execute(f"PRAGMA journal_size_limit={wal_limit}")
    return db


def connect_readonly(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection that can only read (``mode=ro``): it never blocks the writer."""
    db = sqlite3.connect(
        f"file:{path}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=check_same_thread,
    )
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with transaction(db):`` one write transaction, committed when the block ends and
    rolled back if it raises (whatever it raises: a cancelled task must not leave a
    transaction open on the shared connection)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def truncate_wal(db: sqlite3.Connection, wait_ms: int = 1000) -> bool:
    """Checkpoint the whole WAL into the file and truncate it to nothing; False if a reader
    still held a snapshot in it after ``wait_ms`` (then the WAL is left as it was).

    TRUNCATE waits, through the busy handler, for readers to leave the WAL. Ours read for
    milliseconds, so the wait is short; ``wait_ms`` bounds it for the caller on the event
    loop thread, should a reader in another process stall with a snapshot open."""
    db.execute(f"PRAGMA busy_timeout={wait_ms}")
    try:
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:
        busy = 1
    finally:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return not busy


def read_state(db: sqlite3.Connection) -> dict[str, str]:
    """Every key of the ``state`` table (counters, last sync, mqtt flags, hub rules...)."""
    return {str(k): str(v) for k, v in db.execute("SELECT k, v FROM state")}


def put_state(db: sqlite3.Connection, items: dict[str, object]) -> None:
    """Inside a transaction: upsert state keys (values are stored as text)."""
    db.executemany(
        "INSERT INTO state(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
        [(k, str(v)) for k, v in items.items()],
    )

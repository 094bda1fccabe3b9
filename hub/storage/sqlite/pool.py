"""SQLite connections: one writer, a pool of readers.

SQLite runs in WAL mode: readers never block the writer and a commit is one fsync-free
append (``synchronous=NORMAL``: a committed transaction survives a crash of the process;
only an OS crash or power cut can lose the last few). A sqlite3 connection must not be used
by two threads at once, and Robyn runs sync handlers on several threads.

Connections are never tied to threads: Robyn calls handlers from its Rust worker threads,
and each call gets a fresh Python thread state, so a ``threading.local`` connection would be
opened anew (and leaked) on every request, its page cache cold. Instead there is one writer
connection, used under a lock by whoever writes, whose cache stays warm across ingest batches,
and a pool of reader connections, each lent to one call at a time. Writes serialise on
``BEGIN IMMEDIATE`` instead of failing late on lock upgrade.

Between processes (``workers`` > 1, the CLI) a writer first takes its turn on an flock of
``<database>.write.lock``: the kernel wakes the next writer the moment the last one lets go,
where SQLite's busy handler polls with sleeps of up to 25 ms. With the turn handed over at
once, two hub processes overlap one's decoding and checking with the other's write.
``busy_timeout`` still covers writers that do not take the turn (an sqlite3 shell).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hub.storage.model import StorageError

# Every connection's settings (the benchmarks' raw baselines use them too, to be fair).
SETTINGS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "busy_timeout=5000",
    "foreign_keys=ON",
    # An 8 MB page cache that a write transaction may outgrow to about 64 MB (16,000 pages
    # of 4 kB) before it spills dirty pages. Ending a write transaction costs SQLite 3.40 time
    # in proportion to the pages its cache holds (a loop over the cache under COMMIT; perf
    # put 8-13% of a fleet batch's CPU there with a 64 MB cache, the setting before), while a
    # cache smaller than one large batch's dirty pages spills them mid-transaction. Measured
    # in process, the settings in turns: a 100-reading batch on the full cache of an 83 MB
    # fleet database 0.67-0.72 ms against 0.96-0.98 ms at 64 MB (0.73-0.84 ms at SQLite's
    # 2 MB default); 40,000-reading drain batches over 1,000 sensors 96-98k readings/s
    # against 100-103k at 64 MB when each reading opens its own minute (74-85k without the
    # spill threshold), 241k against 252k at one reading a second (155-168k at 2 MB). A
    # reader's cache is dropped whenever another connection commits, so under ingest its
    # size hardly matters.
    "cache_size=-8192",
    # Not 16384: SQLite also reads N as on/off from its low byte, and 16384's is 0 (spill off,
    # so a huge transaction, a migration say, would hold every dirty page in memory).
    "cache_spill=16000",
    "temp_store=MEMORY",
    # Checkpoint every ~40 MB of WAL instead of SQLite's default ~4 MB: ingest rewrites the
    # same index pages batch after batch, and each checkpoint copies them into the database
    # again. Measured on a 1M-reading drain: 108k -> 146k readings/s. The WAL is truncated
    # back to 64 MB after a checkpoint so it cannot stay large.
    "wal_autocheckpoint=10000",
    f"journal_size_limit={64 * 1024 * 1024}",
)

# Token hashes and telemetry: the owner's alone, whatever the umask. SQLite gives the -wal
# and -shm files the mode of the database file itself (and fchmods them past the umask).
FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private(path: str) -> None:
    """Create the database file (and a missing parent directory) for the owner alone, and
    take group/other access away from an existing one and its -wal/-shm."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
        os.chmod(parent, DIR_MODE)  # makedirs' mode is filtered by the umask
    # Never open (and close) a database file that exists: closing any descriptor of a file
    # drops every POSIX lock this process holds on it, SQLite connections' locks included.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(name).st_mode & 0o777 != FILE_MODE:
                os.chmod(name, FILE_MODE)
        except FileNotFoundError:
            pass
        except PermissionError:
            pass  # not the owner's process: the owner keeps the mode they chose


class SQLitePool:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None  # opened under _write_lock
        self._turn: int | None = None  # the write.lock descriptor, opened under _write_lock
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def connect(self) -> sqlite3.Connection:
        """A new connection with the hub's settings; closed by :meth:`close`."""
        try:
            make_private(self.path)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below).
            # check_same_thread=False: a connection moves between threads (the pool lends it
            # to one call at a time) and close() closes them all from one thread.
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            for setting in SETTINGS:
                conn.execute(f"PRAGMA {setting}")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from None
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def reader(self, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for reads, this call's alone until it returns to the pool."""
        try:
            conn = self._idle_readers.get_nowait()
        except queue.Empty:
            conn = self.connect()
        try:
            if snapshot:
                conn.execute("BEGIN")
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._idle_readers.put(conn)

    def _writer_conn(self) -> sqlite3.Connection:
        """The one writer connection, opened on first use; call with _write_lock held."""
        if self._writer is None:
            self._writer = self.connect()
        return self._writer

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """This process's turn among the database's writers (the flock of write.lock; a
        lock file beside the database, since closing any descriptor of the database file
        itself would drop the locks SQLite holds on it). Call with _write_lock held."""
        if self._turn is None:
            try:
                self._turn = os.open(f"{self.path}.write.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StorageError(f"cannot open database {self.path}: {exc}") from None
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        # Threads of this process queue on a lock, processes on the flock: both hand over
        # at once (see the module's doc).
        with self._write_lock, self._writers_turn():
            conn = self._writer_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def write_one(self, sql: str, params: Sequence[Any]) -> int:
        # Through the one writer: a write on a reader connection would take SQLite's write
        # lock on its own, and wait for it by polling.
        with self.write() as conn:
            return conn.execute(sql, params).rowcount

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (at a clean stop)."""
        with self._write_lock, self._writers_turn():
            self._writer_conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        with self._write_lock:
            self._writer = None
            turn, self._turn = self._turn, None
        if turn is not None:
            with contextlib.suppress(OSError):
                os.close(turn)
        self._idle_readers = queue.SimpleQueue()
        for conn in conns:
            conn.close()

"""The outbox: :class:`Buffer`, every reading the agent acknowledged to the broker until the
hub has confirmed it, and the one object the rest of the agent talks to.

Invariants:

* **Ack after commit.** :meth:`Buffer.append` returns after COMMIT; the readings, their dead
  letters, the alerts they raised, the redelivery record of their MQTT messages, any
  eviction and every counter change are one transaction.
* **A seq names one reading forever.** Seqs come from AUTOINCREMENT (never reused, see
  schema.py), and :meth:`Buffer.make_durable` fsyncs the WAL and moves the seq mark above a
  batch before any of its seqs reaches the hub, so not even a power cut followed by a
  salvage can hand a seq the hub has stored to a different reading.
* **Deleted only when the hub has it.** Rows leave ``readings`` by :meth:`Buffer.ack` (the hub
  said 2xx), :meth:`Buffer.reject` (the hub refused them for good: they become dead letters)
  or eviction under ``drop_oldest`` (counted in ``dropped``; an evicted row the hub turns out
  to have stored comes off that count again in ``ack``).
* **Readers never see half a transaction.** The sync's read-ahead claims through its own
  read-only connection (``ahead=True``), which sees committed rows only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import msgspec

import threshold_checker as tc
from agent.buffer import db as sql
from agent.buffer import recovery, schema
from agent.buffer.alerts import AlertOutbox, AlertRow
from agent.buffer.budget import Budget, WhenFull, wal_limit
from agent.buffer.redelivery import MessageId, Redelivery
from agent.buffer.status import Status, collect

_MAX_DEAD_LETTER_PAYLOAD = 64 * 1024
_CHECKPOINT_EVERY_S = 30.0
_MAX_SEQ = (1 << 63) - 1
# Seqs the seq mark reserves ahead of the highest one sent (see make_durable).
_SEQ_MARK_STEP = 1_000_000


class Reading(NamedTuple):
    key: str
    ts: float
    value: float
    unit: str | None
    received_at: float


class DeadLetter(NamedTuple):
    topic: str
    payload: bytes
    reason: str
    received_at: float


class Row(NamedTuple):
    """A stored, not yet synced reading."""

    seq: int
    key: str
    ts: float
    value: float
    unit: str | None


# Called inside append()'s transaction with the seq of each reading (None: not stored) and the
# readings; returns the alert events they cause (see agent.rules.Alerting.derive).
DeriveAlerts = Callable[[Sequence[int | None], Sequence[Reading]], Sequence[tc.AlertEvent]]


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: int
    dropped: int
    # True only with when_full="block": nothing was written, the caller must not ack the
    # messages and should retry once the sync has freed space.
    full: bool = False
    # Alerts opened/updated/closed by these readings, committed with them.
    alerts: tuple[AlertRow, ...] = ()


def _fit(rows: list[Row], max_bytes: int) -> list[Row]:
    """The leading rows that make about ``max_bytes`` of wire JSON (at least one)."""
    total = 0
    for i, r in enumerate(rows):
        # [seq,"key",ts,value,"unit"], with floats written out in full
        total += 60 + len(r.key) + len(r.unit or "")
        if total > max_bytes and i > 0:
            return rows[:i]
    return rows


def _consecutive_runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct seqs -> (first, last) of each run of consecutive values."""
    if not seqs:
        return []
    if seqs[-1] - seqs[0] == len(seqs) - 1:
        return [(seqs[0], seqs[-1])]
    runs = []
    first = prev = seqs[0]
    for seq in seqs[1:]:
        if seq != prev + 1:
            runs.append((first, prev))
            first = seq
        prev = seq
    runs.append((first, prev))
    return runs


class Buffer:
    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 2_000_000_000,
        when_full: WhenFull = "drop_oldest",
        *,
        max_dead_letters: int = 10_000,
        durability: sql.Durability = "process",
    ) -> None:
        self.path = Path(path)
        self.durability: sql.Durability = durability
        self.max_bytes = max_bytes
        self.when_full: WhenFull = when_full
        self.max_dead_letters = max_dead_letters
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wal_limit = wal_limit(max_bytes)
        # Set when this start found the file damaged and salvaged it (agent.buffer.recovery).
        self.recovered: recovery.Recovered | None = None
        recovery.finish_interrupted(self.path)
        problem = recovery.find_problem(self.path, self._connect)
        if problem is not None:
            self._salvage(problem)
        self._db = self._connect(self.path)
        schema.create(self._db)
        self._read_db: sqlite3.Connection | None = None
        # From the trigger-maintained counter, not count(*): that reads the whole table, i.e.
        # seconds and every page of a 10M-reading backlog at every start.
        self._backlog = int(self._db.execute("SELECT n FROM backlog_count").fetchone()[0])
        self.budget = Budget(self._db, self.path, max_bytes, lambda: self._backlog)
        self.alerts = AlertOutbox(self._db, self._reader)
        self.redelivery = Redelivery(self._db)
        self._seq_mark = recovery.read_seq_mark(self.path)
        state = sql.read_state(self._db)
        self._dropped = int(state.get("dropped", "0"))
        self._dead_total = int(state.get("dead_letters_total", "0"))
        self._dead_rows = int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
        self._last_checkpoint = time.monotonic()

    def _connect(self, path: Path) -> sqlite3.Connection:
        return sql.connect(path, self._wal_limit, self.durability)

    def _salvage(self, problem: str) -> None:
        """Build a new buffer from what ``self.path`` still has, then swap it in."""
        tmp = recovery.tmp_path(self.path)
        db = self._connect(tmp)
        try:
            schema.create(db)
            found = recovery.salvage(self.path, db, problem)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        recovery.swap_in(self.path, tmp, found.moved_to)
        recovery.report(found)
        self.recovered = found

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Every write of the buffer: one transaction (db.transaction), and after its commit
        the WAL brought back within its share of the budget (Budget.bound_wal)."""
        with sql.transaction(self._db) as db:
            yield db
        self.budget.bound_wal()

    def _reader(self) -> sqlite3.Connection:
        if self._read_db is None:
            # Used by one sync worker thread at a time, never concurrently.
            self._read_db = sql.connect_readonly(self.path, check_same_thread=False)
        return self._read_db

    # -- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, str]:
        """Every key of the state table (also the persisted hub rules, see agent.rules)."""
        return sql.read_state(self._db)

    def set_state(self, **items: object) -> None:
        """Write state keys in their own transaction (mqtt flags, last sync)."""
        with self._write():
            sql.put_state(self._db, items)

    # -- counters and budget -----------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self._backlog

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def dead_letters_total(self) -> int:
        return self._dead_total

    def disk_bytes(self) -> int:
        return self.budget.disk_bytes()

    def txn_readings_cap(self, sample: Sequence[Reading]) -> int:
        """Readings one append should carry at most (see Budget.txn_readings_cap)."""
        return self.budget.txn_readings_cap(sample)

    def stats(self) -> Status:
        return collect(self._db, self.path, self.max_bytes, self.when_full, self._backlog)

    # -- the hot path ------------------------------------------------------------------------

    def append(
        self,
        readings: Sequence[Reading],
        dead_letters: Sequence[DeadLetter] = (),
        *,
        derive_alerts: DeriveAlerts | None = None,
        messages: Sequence[MessageId] = (),
    ) -> AppendResult:
        """Store readings and dead letters in ONE transaction; returns after COMMIT.

        ``derive_alerts`` runs inside that transaction once the readings have their seqs; the
        alert events it returns are stored in the same transaction (readings and the alerts
        they raised commit together or not at all). ``messages``: the MQTT messages these
        readings came from, remembered in the same transaction (see :meth:`redelivered`)."""
        accept = len(readings)
        if readings and self.when_full != "drop_oldest":
            fits = self.budget.fits(readings)
            if fits < accept:
                if self.when_full == "block" and self._backlog > 0:
                    return AppendResult(0, 0, full=True)
                # With an empty backlog there is nothing the sync could free: store what we
                # are given rather than wait forever.
                accept = accept if self.when_full == "block" else fits
        refused = len(readings) - accept
        evicted = 0
        with self._write() as db:
            if self.when_full == "drop_oldest" and accept and self._backlog:
                # Make room first, so that the insert fills freed pages instead of growing the
                # file past the budget; the check after the insert catches a bad estimate.
                evicted = self.budget.evict_oldest(
                    self._backlog, incoming=accept * self.budget.bytes_per_row(readings)
                )
            if accept:
                db.executemany(
                    "INSERT INTO readings(key, ts, value, unit, received_at) VALUES (?,?,?,?,?)",
                    readings[:accept] if refused else readings,
                )
            alerts: list[AlertRow] = []
            if derive_alerts is not None and readings:
                seqs: list[int | None] = [None] * len(readings)
                if accept:
                    last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
                    seqs[:accept] = range(last - accept + 1, last + 1)
                alerts = self.alerts.store_events(derive_alerts(seqs, readings))
            if dead_letters:
                db.executemany(
                    "INSERT INTO dead_letters(topic, payload, reason, received_at)"
                    " VALUES (?,?,?,?)",
                    [
                        (d.topic, d.payload[:_MAX_DEAD_LETTER_PAYLOAD], d.reason, d.received_at)
                        for d in dead_letters
                    ],
                )
                self._prune_dead_letters(len(dead_letters))
            if messages:  # before the budget check below: its pages count too
                self.redelivery.remember(messages)
            if self.when_full == "drop_oldest" and accept:
                evicted += self.budget.evict_oldest(self._backlog + accept - evicted)
            if refused or evicted:
                sql.put_state(db, {"dropped": self._dropped + refused + evicted})
            if dead_letters:
                sql.put_state(db, {"dead_letters_total": self._dead_total + len(dead_letters)})
        self._backlog += accept - evicted
        self._dropped += refused + evicted
        self._dead_total += len(dead_letters)
        self._dead_rows = min(self._dead_rows + len(dead_letters), self.max_dead_letters)
        self.maybe_checkpoint()
        return AppendResult(
            stored=accept - evicted, dropped=refused + evicted, alerts=tuple(alerts)
        )

    def _prune_dead_letters(self, added: int) -> None:
        # Dead letters are for a person to look at, not an archive: keep the newest ones.
        if self._dead_rows + added > self.max_dead_letters:
            self._db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
                (self.max_dead_letters,),
            )

    def claim(
        self,
        limit: int,
        max_bytes: int | None = None,
        after_seq: int = 0,
        *,
        ahead: bool = False,
        upto_seq: int | None = None,
    ) -> list[Row]:
        """The oldest unsynced rows with ``after_seq < seq <= upto_seq`` in seq order, at most
        ``limit`` and about ``max_bytes`` of wire JSON. Nothing is marked: there is one sync
        task and it acks what it sent.

        ``ahead=True`` reads through a separate read-only connection, so the sync can claim
        its next batch from a worker thread while the current one is on the wire: that
        connection sees only committed rows and never an ingest transaction half-way.
        """
        db = self._reader() if ahead else self._db
        cursor = db.execute(
            "SELECT seq, key, ts, value, unit FROM readings WHERE seq > ? AND seq <= ?"
            " ORDER BY seq LIMIT ?",
            (after_seq, _MAX_SEQ if upto_seq is None else upto_seq, limit),
        )
        # Row._make is tuple.__new__: no Python frame per row, unlike Row(*r) (a drain
        # claims 40,000 rows a batch).
        rows = list(map(Row._make, cursor))
        return rows if max_bytes is None else _fit(rows, max_bytes)

    def claim_live_first(
        self,
        limit: int,
        max_bytes: int,
        *,
        floor: int,
        after_old: int = 0,
        after_new: int = 0,
        live_share: float = 0.5,
        ahead: bool = False,
    ) -> tuple[list[Row], list[Row]]:
        """A batch that lets live data overtake a backlog: ``(new, old)``.

        ``new``: rows above ``floor`` (and after ``after_new``), oldest first, taking at most
        ``live_share`` of the batch while older rows wait (all of it when none do). ``old``:
        the oldest rows at or below ``floor`` (after ``after_old``) fill the rest. Trimmed to
        ``max_bytes`` from the old end, so the live part goes first.
        """
        new = self.claim(limit, None, max(floor, after_new), ahead=ahead)
        reserved = min(len(new), max(1, math.ceil(limit * live_share)))
        old = (
            self.claim(limit - reserved, None, after_old, ahead=ahead, upto_seq=floor)
            if after_old < floor
            else []
        )
        new = new[: limit - len(old)]
        kept = _fit(new + old, max_bytes)
        return kept[: len(new)], kept[len(new) :]

    def max_seq(self) -> int:
        """The highest seq handed out so far (0 for a new buffer); O(1)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
        return 0 if row is None else int(row[0])

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete rows the hub confirmed; returns how many were still there.

        A confirmed row that is gone already was evicted by drop_oldest while its batch was on
        the wire (the one sync task is the only other deleter): it was counted as dropped, but
        the hub has it, so it comes off the dropped count again."""
        seqs = sorted(set(seqs))
        with self._write() as db:
            # A batch is a run or two of consecutive seqs: one range delete per run walks the
            # b-tree once instead of once per row (a 20k batch: 40 -> 14 ms).
            cur = db.executemany(
                "DELETE FROM readings WHERE seq BETWEEN ? AND ?", _consecutive_runs(seqs)
            )
            deleted = cur.rowcount
            delivered_after_drop = min(len(seqs) - deleted, self._dropped)
            if delivered_after_drop:
                sql.put_state(db, {"dropped": self._dropped - delivered_after_drop})
        self._dropped -= delivered_after_drop
        self._backlog -= deleted
        self.maybe_checkpoint()
        return deleted

    def reject(self, reasons: dict[int, str]) -> int:
        """Move readings the hub refused for good into dead_letters (one transaction)."""
        now = time.time()
        with self._write() as db:
            rows = [
                db.execute(
                    "SELECT seq, key, ts, value, unit FROM readings WHERE seq = ?", (seq,)
                ).fetchone()
                for seq in reasons
            ]
            found = [Row(*r) for r in rows if r is not None]
            db.executemany(
                "INSERT INTO dead_letters(topic, payload, reason, received_at) VALUES (?,?,?,?)",
                [
                    (
                        r.key,
                        msgspec.json.encode(
                            {"seq": r.seq, "ts": r.ts, "value": r.value, "unit": r.unit}
                        ),
                        reasons[r.seq],
                        now,
                    )
                    for r in found
                ],
            )
            db.executemany("DELETE FROM readings WHERE seq = ?", [(r.seq,) for r in found])
            self._prune_dead_letters(len(found))
            sql.put_state(db, {"dead_letters_total": self._dead_total + len(found)})
        self._backlog -= len(found)
        self._dead_total += len(found)
        self._dead_rows = min(self._dead_rows + len(found), self.max_dead_letters)
        return len(found)

    # -- MQTT redelivery (redelivery.py) -----------------------------------------------------

    def redelivered(self, messages: Sequence[MessageId]) -> set[MessageId]:
        """Those of ``messages`` (redeliveries with the DUP flag) already committed."""
        return self.redelivery.redelivered(messages)

    def forget_messages(self) -> None:
        """The broker started a new session (see Redelivery.forget)."""
        self.redelivery.forget()

    # -- alerts (alerts.py) ------------------------------------------------------------------

    def store_alert_events(self, events: Sequence[tc.AlertEvent]) -> list[AlertRow]:
        """Apply alert events in their own transaction (e.g. closes after a rule change)."""
        if not events:
            return []
        with self._write():
            return self.alerts.store_events(events)

    def open_alerts(self) -> list[AlertRow]:
        return self.alerts.open()

    def claim_alerts(self, limit: int, *, ahead: bool = False) -> list[AlertRow]:
        return self.alerts.claim(limit, ahead=ahead)

    def ack_alerts(self, sent: Iterable[tuple[int, int]]) -> None:
        with self._write():
            self.alerts.ack(sent)

    def reject_alerts(self, rejected: Sequence[tuple[AlertRow, str]]) -> int:
        """Alert versions the hub refused for good, each with the hub's reason: into
        dead_letters (so ``status`` counts them and a person can read what the edge saw) and
        off the outbox, in one transaction. Returns how many."""
        if not rejected:
            return 0
        now = time.time()
        with self._write() as db:
            db.executemany(
                "INSERT INTO dead_letters(topic, payload, reason, received_at) VALUES (?,?,?,?)",
                [
                    (a.key, msgspec.json.encode({"alert": _stored(a)}), reason, now)
                    for a, reason in rejected
                ],
            )
            self.alerts.ack([(a.id, a.version) for a, _ in rejected])
            self._prune_dead_letters(len(rejected))
            sql.put_state(db, {"dead_letters_total": self._dead_total + len(rejected)})
        self._dead_total += len(rejected)
        self._dead_rows = min(self._dead_rows + len(rejected), self.max_dead_letters)
        return len(rejected)

    def alerts_pending(self) -> int:
        return self.alerts.pending()

    # -- durability --------------------------------------------------------------------------

    def make_durable(self, upto_seq: int = 0) -> None:
        """fsync the WAL, so every committed seq survives a power cut before the hub sees it.

        ``upto_seq``: the highest seq about to be sent. The seq mark file next to the buffer
        is kept above it, so that even a buffer file damaged beyond reading tells a salvage
        where seqs must go on from (agent.buffer.recovery); one small fsynced write per
        ``_SEQ_MARK_STEP`` seqs."""
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if upto_seq > self._seq_mark:
            mark = upto_seq + _SEQ_MARK_STEP
            path = recovery.seq_mark_path(self.path)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w") as f:
                f.write(f"{mark}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._seq_mark = mark

    def maybe_checkpoint(self, force: bool = False) -> None:
        # journal_size_limit leaves the WAL file at wal_limit bytes however few pages are in
        # it; TRUNCATE now and then gives that back. If a reader holds on past the wait,
        # we simply try again next time.
        now = time.monotonic()
        if force or now - self._last_checkpoint >= _CHECKPOINT_EVERY_S:
            self._last_checkpoint = now
            sql.truncate_wal(self._db)

    def close(self) -> None:
        if self._read_db is not None:
            self._read_db.close()
        self.maybe_checkpoint(force=True)
        self._db.close()


def _stored(a: AlertRow) -> dict[str, object]:
    """An alert row as stored (without the event that last changed it, which is not)."""
    return {k: v for k, v in a._asdict().items() if k not in ("event", "ts")}

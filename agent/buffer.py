"""The durable outbox: every reading the agent acknowledged to the broker lives here until the
hub has confirmed it.

One SQLite file in WAL mode, written by one connection on the agent's event loop thread (the
ingest and sync tasks never run a statement at the same time, so there is no lock to contend
for). ``edge-agent status`` opens the same file read-only from another process; WAL lets it read
while the agent writes.

Durability (``synchronous=NORMAL`` in WAL mode): a commit is appended to the ``-wal`` file with
``write()`` but not fsynced; the WAL is fsynced only when it is checkpointed.

* process crash / ``kill -9``: nothing committed is lost - the bytes are in the OS page cache
  and the next open replays the WAL. That is the case ack-after-commit is designed for.
* power loss / kernel panic: the last transactions since the previous WAL sync may be rolled
  back, so messages already acknowledged to the broker can be lost. ``FULL`` would fsync every
  commit (one fsync per ingest batch, ~10-50 ms on SD cards/eMMC); we accept the window for
  throughput. What we do *not* accept is a seq that the hub has already stored being handed out
  again after such a rollback (the hub would take the new reading for a duplicate and drop it),
  so :meth:`Buffer.make_durable` fsyncs the WAL before any seq is sent to the hub.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec
import sqlite_utils

import threshold_checker as tc
from agent import recovery

WhenFull = Literal["drop_oldest", "drop_newest", "block"]

# Bytes a reading costs on disk beyond its key and unit (rowid, three floats, record header,
# b-tree cell overhead). Only used to guess before anything is stored.
_ROW_OVERHEAD = 48
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


class MessageId(NamedTuple):
    """An MQTT message as the redelivery check knows it: packet id and content digest."""

    mid: int
    digest: bytes


# How many committed messages the redelivery check remembers (~40 bytes each): far more than
# can be in flight, far fewer than the 65535 packet ids a broker cycles through.
RECENT_MESSAGES = 4096


class Row(NamedTuple):
    """A stored, not yet synced reading."""

    seq: int
    key: str
    ts: float
    value: float
    unit: str | None


class AlertRow(NamedTuple):
    """An alert as stored in the ``alerts`` outbox, with the event that last changed it."""

    id: int
    key: str
    rule: str
    breach_type: str
    severity: str
    threshold_value: float
    value: float
    opened_at: float
    closed_at: float | None
    reading_seq: int | None  # the reading that opened it
    version: int  # bumped by every change; synced when the hub has acked this version
    event: str = ""  # "open" | "update" | "close": what just happened (not stored)
    ts: float = 0.0  # time of the reading behind that event (not stored)


_ALERT_COLS = (
    "id, key, rule, breach_type, severity, threshold_value, value, opened_at, closed_at,"
    " reading_seq, version"
)

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


def _last_sync(state: dict[str, str]) -> dict[str, Any] | None:
    if "last_sync_at" not in state:
        return None
    return {
        "at": float(state["last_sync_at"]),
        "result": state.get("last_sync_result", ""),
        "accepted": int(state.get("last_sync_accepted", "0")),
        "duplicates": int(state.get("last_sync_duplicates", "0")),
    }


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Buffer:
    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 2_000_000_000,
        when_full: WhenFull = "drop_oldest",
        *,
        max_dead_letters: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.when_full: WhenFull = when_full
        self.max_dead_letters = max_dead_letters
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wal_limit = max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 40))
        # The WAL is written at COMMIT, after the budget check ran, and one transaction can
        # carry it past journal_size_limit before the next checkpoint (further while the sync's
        # read-ahead holds a snapshot): reserve room for that. Every WAL frame is a page plus a
        # 24-byte header, hence the 1.01; measured overshoot with 2x and no headers was ~1.7%.
        self._wal_reserve = int(3 * wal_limit * 1.01)
        self._wal_limit = wal_limit
        # Set when this start found the file damaged and salvaged it (agent.recovery).
        self.recovered: recovery.Recovered | None = None
        recovery.finish_interrupted(self.path)
        problem = recovery.find_problem(self.path, self._connect)
        if problem is not None:
            self._salvage(problem)
        self._db = self._connect(self.path)
        self.page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._create_schema()
        # From the trigger-maintained counter, not count(*): that reads the whole table, i.e.
        # seconds and every page of a 10M-reading backlog at every start.
        self._backlog = int(self._db.execute("SELECT n FROM backlog_count").fetchone()[0])
        self._seq_mark = recovery.read_seq_mark(self.path)
        state = self._state()
        self._dropped = int(state.get("dropped", "0"))
        self._dead_total = int(state.get("dead_letters_total", "0"))
        self._dead_rows = int(self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
        self._last_checkpoint = time.monotonic()
        self._read_db: sqlite3.Connection | None = None

    def _connect(self, path: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so a transaction's extent is
        # visible in the code, not implied by the sqlite3 module's autobegin.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        # Keep the WAL small relative to the budget: it is reused from the start after each
        # checkpoint and truncated back to journal_size_limit, so it never holds much of it.
        db.execute(f"PRAGMA wal_autocheckpoint={max(16, self._wal_limit // page_size // 2)}")
        db.execute(f"PRAGMA journal_size_limit={self._wal_limit}")
        return db

    def _salvage(self, problem: str) -> None:
        """Build a new buffer from what ``self.path`` still has, then swap it in."""
        tmp = recovery.tmp_path(self.path)
        self._db = self._connect(tmp)
        try:
            self._create_schema()
            found = recovery.salvage(self.path, self._db, problem)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
        recovery.swap_in(self.path, tmp, found.moved_to)
        recovery.report(found)
        self.recovered = found

    def _create_schema(self) -> None:
        db = sqlite_utils.Database(self._db)
        if "readings" not in db.table_names():
            # AUTOINCREMENT (not just INTEGER PRIMARY KEY): SQLite then keeps the highest seq
            # ever used in sqlite_sequence, so a seq is never handed out twice even after every
            # row was synced and deleted. The hub deduplicates on (gateway_id, seq).
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS readings ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " key TEXT NOT NULL, ts REAL NOT NULL, value REAL NOT NULL, unit TEXT,"
                " received_at REAL NOT NULL)"
            )
        db.table("dead_letters").create(
            {"id": int, "topic": str, "payload": bytes, "reason": str, "received_at": float},
            pk="id",
            not_null={"topic", "payload", "reason", "received_at"},
            if_not_exists=True,
        )
        db.table("state").create({"k": str, "v": str}, pk="k", if_not_exists=True)
        if "backlog_count" not in db.table_names():
            # The backlog size, kept by triggers in the same transaction as every insert and
            # delete (whatever code path does them), so a start never counts the table. ~0.5 us
            # per row. A buffer from before this table is counted once, here.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("CREATE TABLE backlog_count (n INTEGER NOT NULL)")
            self._db.execute("INSERT INTO backlog_count SELECT count(*) FROM readings")
            self._db.execute(
                "CREATE TRIGGER readings_counted_in AFTER INSERT ON readings"
                " BEGIN UPDATE backlog_count SET n = n + 1; END"
            )
            self._db.execute(
                "CREATE TRIGGER readings_counted_out AFTER DELETE ON readings"
                " BEGIN UPDATE backlog_count SET n = n - 1; END"
            )
            self._db.execute("COMMIT")
        # The alert outbox. An alert is sent when it opens and again when it changes or closes
        # (the hub upserts on (gateway_id, id)): a row is unsynced while version >
        # synced_version, and deleted once it is closed and synced. AUTOINCREMENT: an id is
        # never reused, even after its row is gone.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS alerts ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " key TEXT NOT NULL, rule TEXT NOT NULL, breach_type TEXT NOT NULL,"
            " severity TEXT NOT NULL, threshold_value REAL NOT NULL, value REAL NOT NULL,"
            " opened_at REAL NOT NULL, closed_at REAL, reading_seq INTEGER,"
            " version INTEGER NOT NULL DEFAULT 1, synced_version INTEGER NOT NULL DEFAULT 0)"
        )
        # At most one open alert per sensor and rule; also the lookup for updates and closes.
        self._db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(key, rule)"
            " WHERE closed_at IS NULL"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS alerts_unsynced ON alerts(id)"
            " WHERE version > synced_version"
        )
        # The last MQTT messages committed, by packet id (see "MQTT redelivery" below).
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS mqtt_committed ("
            " mid INTEGER PRIMARY KEY, digest BLOB NOT NULL, n INTEGER NOT NULL)"
        )

    # -- small helpers -----------------------------------------------------------------------

    def _state(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._db.execute("SELECT k, v FROM state")}

    def _put_state(self, items: dict[str, object]) -> None:
        self._db.executemany(
            "INSERT INTO state(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            [(k, str(v)) for k, v in items.items()],
        )

    def state(self) -> dict[str, str]:
        """Every key of the state table (also the persisted hub rules, see agent.rules)."""
        return self._state()

    def set_state(self, **items: object) -> None:
        """Write state keys in their own transaction (mqtt flags, last sync)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._put_state(items)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def used_bytes(self) -> int:
        """Bytes that count against the budget: live pages plus the WAL.

        Deleted rows' pages go on SQLite's freelist and the next inserts reuse them before the
        file grows, so pages on the freelist are room, not usage. The file itself never shrinks
        (no VACUUM on the hot path), but it also never grows while the freelist has pages; that
        keeps file + WAL within the budget as long as live pages + WAL are.
        """
        pages, free = self._db.execute(
            "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
        ).fetchone()
        return (int(pages) - int(free)) * self.page_size + max(self._wal_bytes(), self._wal_reserve)

    def disk_bytes(self) -> int:
        return self.path.stat().st_size + self._wal_bytes()

    def txn_readings_cap(self, sample: Sequence[Reading]) -> int:
        """Readings one append should carry at most. A transaction's pages sit in the WAL
        until a checkpoint after its commit, and the WAL's share of max_bytes is the reserve
        (a few wal_limit): one WAL limit's worth keeps file + WAL within the budget even when
        the rows fill pages a drain freed (the file never shrinks)."""
        return max(1, int(self._wal_limit / self._bytes_per_row(sample)))

    def _bytes_per_row(self, sample: Sequence[Reading]) -> float:
        if self._backlog > 100:
            pages, free = self._db.execute(
                "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
            ).fetchone()
            return max(16.0, (int(pages) - int(free)) * self.page_size / self._backlog)
        if not sample:
            return float(_ROW_OVERHEAD)
        return _ROW_OVERHEAD + sum(len(r.key) + len(r.unit or "") for r in sample) / len(sample)

    # -- the hot path ------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self._backlog

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def dead_letters_total(self) -> int:
        return self._dead_total

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
            # Two pages of slack: the per-row estimate is an average, and the insert takes
            # whole pages (a 1 MB budget was once overshot by 1.4 KB without it).
            room = self.max_bytes - self.used_bytes() - 2 * self.page_size
            fits = max(0, math.floor(room / self._bytes_per_row(readings)))
            if fits < accept:
                if self.when_full == "block" and self._backlog > 0:
                    return AppendResult(0, 0, full=True)
                # With an empty backlog there is nothing the sync could free: store what we
                # are given rather than wait forever.
                accept = accept if self.when_full == "block" else fits
        refused = len(readings) - accept
        evicted = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self.when_full == "drop_oldest" and accept and self._backlog:
                # Make room first, so that the insert fills freed pages instead of growing the
                # file past the budget; the check after the insert catches a bad estimate.
                evicted = self._evict_oldest(
                    self._backlog, incoming=accept * self._bytes_per_row(readings)
                )
            if accept:
                self._db.executemany(
                    "INSERT INTO readings(key, ts, value, unit, received_at) VALUES (?,?,?,?,?)",
                    readings[:accept] if refused else readings,
                )
            alerts: list[AlertRow] = []
            if derive_alerts is not None and readings:
                seqs: list[int | None] = [None] * len(readings)
                if accept:
                    last = int(self._db.execute("SELECT last_insert_rowid()").fetchone()[0])
                    seqs[:accept] = range(last - accept + 1, last + 1)
                alerts = self._store_alert_events(derive_alerts(seqs, readings))
            if dead_letters:
                self._db.executemany(
                    "INSERT INTO dead_letters(topic, payload, reason, received_at)"
                    " VALUES (?,?,?,?)",
                    [
                        (d.topic, d.payload[:_MAX_DEAD_LETTER_PAYLOAD], d.reason, d.received_at)
                        for d in dead_letters
                    ],
                )
                self._prune_dead_letters(len(dead_letters))
            if messages:  # before the budget check below: its pages count too
                self._remember_messages(messages)
            if self.when_full == "drop_oldest" and accept:
                evicted += self._evict_oldest(self._backlog + accept - evicted)
            if refused or evicted:
                self._put_state({"dropped": self._dropped + refused + evicted})
            if dead_letters:
                self._put_state({"dead_letters_total": self._dead_total + len(dead_letters)})
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._backlog += accept - evicted
        self._dropped += refused + evicted
        self._dead_total += len(dead_letters)
        self._dead_rows = min(self._dead_rows + len(dead_letters), self.max_dead_letters)
        self.maybe_checkpoint()
        return AppendResult(
            stored=accept - evicted, dropped=refused + evicted, alerts=tuple(alerts)
        )

    def _evict_oldest(self, backlog: int, incoming: float = 0.0) -> int:
        """Inside the append transaction: delete the oldest unsynced rows until under budget.

        The oldest rows sit together at the left of the seq b-tree, so deleting them empties
        whole leaf pages; those go to the freelist at once and the used size drops.
        """
        evicted = 0
        for _ in range(20):
            excess = self.used_bytes() + incoming - self.max_bytes
            if excess <= 0 or backlog - evicted <= 0:
                break
            per_row = self._bytes_per_row(())
            n = min(backlog - evicted, max(64, math.ceil(excess / per_row * 1.1)))
            cur = self._db.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (n,),
            )
            evicted += cur.rowcount
            incoming = 0.0
        return evicted

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
        rows = [
            Row(*r)
            for r in db.execute(
                "SELECT seq, key, ts, value, unit FROM readings WHERE seq > ? AND seq <= ?"
                " ORDER BY seq LIMIT ?",
                (after_seq, _MAX_SEQ if upto_seq is None else upto_seq, limit),
            )
        ]
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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # A batch is a run or two of consecutive seqs: one range delete per run walks the
            # b-tree once instead of once per row (a 20k batch: 40 -> 14 ms).
            cur = self._db.executemany(
                "DELETE FROM readings WHERE seq BETWEEN ? AND ?", _consecutive_runs(seqs)
            )
            deleted = cur.rowcount
            delivered_after_drop = min(len(seqs) - deleted, self._dropped)
            if delivered_after_drop:
                self._put_state({"dropped": self._dropped - delivered_after_drop})
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._dropped -= delivered_after_drop
        self._backlog -= deleted
        self.maybe_checkpoint()
        return deleted

    def reject(self, reasons: dict[int, str]) -> int:
        """Move readings the hub refused for good into dead_letters (one transaction)."""
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = [
                self._db.execute(
                    "SELECT seq, key, ts, value, unit FROM readings WHERE seq = ?", (seq,)
                ).fetchone()
                for seq in reasons
            ]
            found = [Row(*r) for r in rows if r is not None]
            self._db.executemany(
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
            self._db.executemany("DELETE FROM readings WHERE seq = ?", [(r.seq,) for r in found])
            self._prune_dead_letters(len(found))
            self._put_state({"dead_letters_total": self._dead_total + len(found)})
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._backlog -= len(found)
        self._dead_total += len(found)
        self._dead_rows = min(self._dead_rows + len(found), self.max_dead_letters)
        return len(found)

    # -- MQTT redelivery ---------------------------------------------------------------------
    #
    # The broker redelivers (DUP flag, same packet id) every message whose PUBACK it did not
    # get. For a message the agent committed but died before acking, that redelivery must be
    # acked without storing it again. We remember the packet id and a digest of the topic and
    # payload of the last committed messages, one row per packet id: a new message that reuses
    # an id replaces the old row, so a DUP can only match the latest message sent under its id.

    # Commit counter of the newest row and the row count, read once, then kept in step.
    _mqtt_n: int | None = None
    _mqtt_rows = 0

    def _remember_messages(self, messages: Sequence[MessageId]) -> None:
        """Inside the append transaction: record committed messages, keep the newest.

        Keyed on the packet id alone (the rowid, no second index) and pruned in small steps,
        so that a commit touches few extra pages: they count against the budget, WAL included.
        """
        if self._mqtt_n is None:
            n, rows = self._db.execute(
                "SELECT coalesce(max(n), 0), count(*) FROM mqtt_committed"
            ).fetchone()
            self._mqtt_n, self._mqtt_rows = int(n), int(rows)
        first = self._mqtt_n + 1
        self._db.executemany(
            "INSERT OR REPLACE INTO mqtt_committed(mid, digest, n) VALUES (?, ?, ?)",
            [(mid, digest, first + i) for i, (mid, digest) in enumerate(messages)],
        )
        self._mqtt_n = first + len(messages) - 1
        # An overcount (replaced rows, a rolled-back commit) only brings the prune forward.
        self._mqtt_rows += len(messages)
        # At least the last two batches, so a batch whose PUBACKs were lost is always covered.
        keep = max(RECENT_MESSAGES, 2 * len(messages))
        if self._mqtt_rows > keep + 256:
            self._db.execute("DELETE FROM mqtt_committed WHERE n <= ?", (self._mqtt_n - keep,))
            self._mqtt_rows = keep

    def redelivered(self, messages: Sequence[MessageId]) -> set[MessageId]:
        """Those of ``messages`` (redeliveries with the DUP flag) already committed."""
        found: set[MessageId] = set()
        for mid, digest in messages:
            row = self._db.execute(
                "SELECT 1 FROM mqtt_committed WHERE mid = ? AND digest = ?", (mid, digest)
            ).fetchone()
            if row is not None:
                found.add(MessageId(mid, digest))
        return found

    def forget_messages(self) -> None:
        """The broker started a new session: nothing from before can be redelivered, and a
        packet id it hands out from now on names a new message."""
        self._db.execute("DELETE FROM mqtt_committed")
        self._mqtt_rows = 0

    # -- alerts ------------------------------------------------------------------------------

    def _store_alert_events(self, events: Sequence[tc.AlertEvent]) -> list[AlertRow]:
        """Inside a transaction: apply alert lifecycle events to the outbox."""
        out: list[AlertRow] = []
        for ev in events:
            closed_at = ev.ts if ev.kind == "close" else None
            row = None
            if ev.kind != "open":
                row = self._db.execute(
                    "UPDATE alerts SET severity = ?, value = ?, closed_at = ?,"
                    " version = version + 1 WHERE key = ? AND rule = ? AND closed_at IS NULL"
                    f" RETURNING {_ALERT_COLS}",
                    (ev.severity, ev.value, closed_at, ev.key, ev.rule),
                ).fetchone()
            else:
                # Never two open alerts for one sensor and rule: close a stray one first.
                self._db.execute(
                    "UPDATE alerts SET closed_at = ?, version = version + 1"
                    " WHERE key = ? AND rule = ? AND closed_at IS NULL",
                    (ev.ts, ev.key, ev.rule),
                )
            if row is None:  # an open, or an update/close whose open row is gone
                row = self._db.execute(
                    "INSERT INTO alerts(key, rule, breach_type, severity, threshold_value,"
                    " value, opened_at, closed_at, reading_seq) VALUES (?,?,?,?,?,?,?,?,?)"
                    f" RETURNING {_ALERT_COLS}",
                    (
                        ev.key,
                        ev.rule,
                        ev.breach_type,
                        ev.severity,
                        ev.threshold_value,
                        ev.value,
                        ev.opened_at,
                        closed_at,
                        ev.opened_seq,
                    ),
                ).fetchone()
            out.append(AlertRow(*row)._replace(event=ev.kind, ts=ev.ts))
        return out

    def store_alert_events(self, events: Sequence[tc.AlertEvent]) -> list[AlertRow]:
        """Apply alert events in their own transaction (e.g. closes after a rule change)."""
        if not events:
            return []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._store_alert_events(events)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return rows

    def open_alerts(self) -> list[AlertRow]:
        """Alerts not closed yet (to restore the rule engine after a restart)."""
        return [
            AlertRow(*r)
            for r in self._db.execute(
                f"SELECT {_ALERT_COLS} FROM alerts WHERE closed_at IS NULL ORDER BY id"
            )
        ]

    def claim_alerts(self, limit: int, *, ahead: bool = False) -> list[AlertRow]:
        """Alerts the hub has not acked in their current version, oldest first. (Sending
        one twice is harmless: the hub upserts alerts on their id.)"""
        db = self._reader() if ahead else self._db
        return [
            AlertRow(*r)
            for r in db.execute(
                f"SELECT {_ALERT_COLS} FROM alerts WHERE version > synced_version"
                " ORDER BY id LIMIT ?",
                (limit,),
            )
        ]

    def ack_alerts(self, sent: Iterable[tuple[int, int]]) -> None:
        """Mark ``(id, version)`` pairs as synced; drop closed alerts the hub has in full.
        An alert that changed since it was sent stays unsynced (its version moved on)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "UPDATE alerts SET synced_version = max(synced_version, ?) WHERE id = ?",
                [(version, alert_id) for alert_id, version in sent],
            )
            self._db.execute(
                "DELETE FROM alerts WHERE closed_at IS NOT NULL AND synced_version >= version"
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def alerts_pending(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM alerts WHERE version > synced_version"
            ).fetchone()[0]
        )

    def make_durable(self, upto_seq: int = 0) -> None:
        """fsync the WAL, so every committed seq survives a power cut before the hub sees it.

        ``upto_seq``: the highest seq about to be sent. The seq mark file next to the buffer
        is kept above it, so that even a buffer file damaged beyond reading tells a salvage
        where seqs must go on from (agent.recovery); one small fsynced write per
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
        # The automatic checkpoints are PASSIVE and leave the WAL file at its high-water mark;
        # TRUNCATE now and then gives the space back. It returns "busy" instead of waiting
        # while a status reader holds a snapshot; then we simply try again next time.
        now = time.monotonic()
        if force or now - self._last_checkpoint >= _CHECKPOINT_EVERY_S:
            self._last_checkpoint = now
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return _stats(self._db, self.path, self.max_bytes, self.when_full, self._backlog)

    def _reader(self) -> sqlite3.Connection:
        if self._read_db is None:
            # Used by one sync worker thread at a time, never concurrently.
            self._read_db = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self._read_db.execute("PRAGMA busy_timeout=5000")
        return self._read_db

    def close(self) -> None:
        if self._read_db is not None:
            self._read_db.close()
        self.maybe_checkpoint(force=True)
        self._db.close()


def _stats(
    db: sqlite3.Connection,
    path: Path,
    max_bytes: int | None,
    when_full: str | None,
    backlog: int | None = None,
) -> dict[str, Any]:
    if backlog is None:
        try:
            backlog = int(db.execute("SELECT n FROM backlog_count").fetchone()[0])
        except sqlite3.OperationalError:  # a buffer from before the counter existed
            backlog = int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
    oldest = db.execute("SELECT received_at FROM readings ORDER BY seq LIMIT 1").fetchone()
    state = {str(k): str(v) for k, v in db.execute("SELECT k, v FROM state")}
    pid = int(state.get("pid", "0"))
    running = pid > 0 and _pid_alive(pid)
    try:
        size = path.stat().st_size + (
            os.stat(f"{path}-wal").st_size if os.path.exists(f"{path}-wal") else 0
        )
    except FileNotFoundError:
        size = 0
    try:
        open_alerts, unsynced_alerts = db.execute(
            "SELECT count(*) FILTER (WHERE closed_at IS NULL),"
            " count(*) FILTER (WHERE version > synced_version) FROM alerts"
        ).fetchone()
    except sqlite3.OperationalError:  # a buffer from before alerts existed
        open_alerts, unsynced_alerts = 0, 0
    return {
        "backlog": backlog,
        "alerts": {
            "open": int(open_alerts),
            "unsynced": int(unsynced_alerts),
            "rules_version": int(state.get("rules_version", "0")),
        },
        "oldest_unsynced_age_s": None
        if oldest is None
        else round(max(0.0, time.time() - float(oldest[0])), 3),
        "dead_letters": int(state.get("dead_letters_total", "0")),
        "dropped": int(state.get("dropped", "0")),
        "last_sync": _last_sync(state),
        "last_sync_error": state.get("last_sync_error") or None,
        "mqtt": {
            # A kill -9 leaves connected=1 behind; only a live agent process can be connected.
            "connected": running and state.get("mqtt_connected") == "1",
            "since": float(state["mqtt_since"]) if state.get("mqtt_since") else None,
        },
        "agent": {"running": running, "pid": pid if running else None},
        "buffer": {
            "path": str(path),
            "bytes": size,
            "max_bytes": max_bytes,
            "when_full": when_full,
        },
        "recovered": _recovered(state),
    }


def _recovered(state: dict[str, str]) -> dict[str, Any] | None:
    """The last salvage of a damaged buffer file (agent.recovery), if there was one."""
    if "recovered_at" not in state:
        return None
    return {
        "at": float(state["recovered_at"]),
        "reason": state.get("recovered_reason", ""),
        "moved_to": state.get("recovered_moved_to", ""),
        "rows_saved": int(state.get("recovered_rows_saved", "0")),
    }


def read_status(path: str | Path, max_bytes: int | None, when_full: str | None) -> dict[str, Any]:
    """Stats from another process (``edge-agent status``) without taking any write lock."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no buffer at {path} (has the agent run yet?)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("BEGIN")  # one snapshot for every number we report
        return _stats(db, path, max_bytes, when_full)
    finally:
        db.close()

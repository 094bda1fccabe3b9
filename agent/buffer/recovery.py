"""A damaged buffer file at start: find it cheaply, keep every row that can still be read.

A power cut on an SD card, a full disk or a stray ``dd`` can leave ``buffer.db`` truncated or
with garbage pages. Refusing to start would stop the gateway; starting on a fresh empty file
would silently throw away every reading still in the old one. Instead:

1. :func:`find_problem` checks the file at start. The header (magic, page size, page count
   against the file size) is always checked, in microseconds. ``PRAGMA quick_check`` reads
   every page, so it runs only on files up to ``FULL_CHECK_MAX_BYTES`` (or when the last run
   hit a corrupt page, see :func:`mark_suspect`); a larger file gets the reads every start
   does anyway (schema, state, both ends of the readings b-tree), so a big backlog still
   starts in seconds.
2. :func:`salvage` copies what is readable into a new file next to it: readings by seq range,
   halving a range that fails until single rows, so one bad page costs the rows on it and no
   more; then every other table row by row. Seqs are kept, and ``sqlite_sequence`` is set to
   at least the highest seq the old file is known to have used (its sqlite_sequence, its rows,
   and the seq mark the sync writes before sending, see ``Buffer.make_durable``): the hub
   deduplicates on (gateway, seq), so a reused seq would make it drop a new reading.
3. The damaged file moves aside as ``buffer.db.corrupt-<UTC time>`` (with its -wal), the new
   file takes its place, and the state table records ``recovered_*`` for ``status``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import structlog

log = structlog.get_logger("agent.buffer.recovery")

_MAGIC = b"SQLite format 3\x00"
# quick_check reads every page: ~1 s per few hundred MB. Above this only the cheap checks run.
FULL_CHECK_MAX_BYTES = 256 * 1024 * 1024
_CHUNK = 50_000
# Below this many seqs a failing range is left to the raw page scan (see _copy_readings).
_MIN_SPAN = 64
# Tables whose contents salvage rebuilds itself rather than copying row by row.
_NOT_COPIED = frozenset({"readings", "sqlite_sequence", "backlog_count"})
# State keys that describe the process that wrote the old file, not the data in it.
_VOLATILE_STATE = ("pid", "mqtt_connected", "mqtt_since")


@dataclass(frozen=True, slots=True)
class Recovered:
    at: float
    reason: str
    moved_to: Path
    rows_saved: int
    max_seq: int


def suspect_marker(path: Path) -> Path:
    return path.with_name(path.name + ".suspect")


def seq_mark_path(path: Path) -> Path:
    return path.with_name(path.name + ".seqmark")


def tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".salvage")


def mark_suspect(path: Path) -> None:
    """Ask the next start for a full check: SQLite reported a corrupt page while running."""
    with contextlib.suppress(OSError):
        suspect_marker(path).touch()


def read_seq_mark(path: Path) -> int:
    try:
        return int(seq_mark_path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def header_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size == 0:
        return None  # SQLite's own empty database
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return "not a SQLite database (bad header)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"bad page size {page_size} in the header"
    if size % page_size:
        return f"truncated: {size} bytes is not a whole number of {page_size}-byte pages"
    pages = int.from_bytes(head[28:32], "big")
    # The page count is only valid when "version-valid-for" matches the change counter.
    if head[24:28] == head[92:96] and size < pages * page_size:
        return f"truncated: {size} bytes, the header says {pages} pages of {page_size}"
    return None


def probe(db: sqlite3.Connection, *, full: bool) -> str | None:
    """The reads a start depends on (or all of them with ``full``); None when they work."""
    try:
        if full:
            result = [str(r[0]) for r in db.execute("PRAGMA quick_check(5)")]
            return None if result == ["ok"] else "quick_check: " + "; ".join(result)
        tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
        if "readings" in tables:
            db.execute("SELECT * FROM readings ORDER BY seq LIMIT 1").fetchall()
            db.execute("SELECT * FROM readings ORDER BY seq DESC LIMIT 1").fetchall()
        for table in tables & {"state", "backlog_count", "sqlite_sequence"}:
            db.execute(f'SELECT * FROM "{table}"').fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


def find_problem(path: Path, connect: Callable[[Path], sqlite3.Connection]) -> str | None:
    """Why ``path`` cannot be used as it is, or None. A missing file is fine (a new buffer)."""
    if not path.exists():
        return None
    problem = header_problem(path)
    if problem:
        return problem
    full = path.stat().st_size <= FULL_CHECK_MAX_BYTES or suspect_marker(path).exists()
    try:
        db = connect(path)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    try:
        return probe(db, full=full)
    finally:
        db.close()


def _open_damaged(path: Path) -> sqlite3.Connection | None:
    # Read-only keeps the evidence as it was (no checkpoint of its WAL into it on close); if
    # that cannot open it (no -shm to map), read-write with writes refused.
    for uri, extra in ((f"file:{path}?mode=ro", ()), (f"file:{path}", ("PRAGMA query_only=1",))):
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
            # A truncated file: without this SQLite refuses it outright because the header
            # claims more pages than the file has; with it, it reads what is there.
            db.execute("PRAGMA writable_schema=ON")
            for sql in extra:
                db.execute(sql)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.DatabaseError:
            continue
    return None


def _one(db: sqlite3.Connection, sql: str) -> int | None:
    try:
        row = db.execute(sql).fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None or row[0] is None else int(row[0])


def _readable_ranges(src: sqlite3.Connection, lo: int, hi: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``readings`` with seq in [lo, hi], in chunks; a chunk that fails to read is
    halved down to ``_MIN_SPAN`` seqs."""
    sql = (
        "SELECT seq, key, ts, value, unit, received_at FROM readings"
        " WHERE seq BETWEEN ? AND ? ORDER BY seq"
    )
    for start in range(lo, hi + 1, _CHUNK):
        stack = [(start, min(hi, start + _CHUNK - 1))]
        while stack:
            a, b = stack.pop()
            try:
                rows = src.execute(sql, (a, b)).fetchall()
            except sqlite3.DatabaseError:
                if b - a < _MIN_SPAN:
                    continue
                mid = (a + b) // 2
                stack += [(mid + 1, b), (a, mid)]  # lower half first
                continue
            if rows:
                yield rows


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """SQLite's big-endian varint at ``buf[i]`` -> (value, next index)."""
    v = 0
    for k in range(8):
        b = buf[i + k]
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, i + k + 1
    return (v << 8) | buf[i + 8], i + 9


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _value(t: int, buf: bytes, i: int) -> tuple[Any, int]:
    if t == 0:
        return None, i
    if t in _INT_SIZES:
        n = _INT_SIZES[t]
        return int.from_bytes(buf[i : i + n], "big", signed=True), i + n
    if t == 7:
        return struct.unpack(">d", buf[i : i + 8])[0], i + 8
    if t in (8, 9):
        return t - 8, i
    if t >= 12:
        n = (t - 12) // 2
        raw = buf[i : i + n]
        if len(raw) != n:
            raise ValueError("cell runs past the page")
        return (raw.decode() if t % 2 else raw), i + n
    raise ValueError(f"serial type {t}")


def _reading_cell(page: bytes, off: int) -> tuple[Any, ...] | None:
    """A readings row from one table-leaf cell, or None if the cell is not one."""
    size, i = _varint(page, off)
    seq, i = _varint(page, i)
    if size > len(page) - 35 or i + size > len(page):
        return None  # spills to overflow pages (never for a reading) or runs off the page
    end_header_len, j = _varint(page, i)
    header_end = i + end_header_len
    types = []
    while j < header_end:
        t, j = _varint(page, j)
        types.append(t)
    if len(types) != 6 or types[0] != 0 or types[1] < 13 or types[1] % 2 == 0:
        return None
    values = []
    k = header_end
    for t in types:
        v, k = _value(t, page, k)
        values.append(v)
    _, key, ts, value, unit, received = values
    if not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in (ts, value, received)
    ):
        return None
    if unit is not None and not isinstance(unit, str):
        return None
    return (seq, key, float(ts), float(value), unit, float(received))


def _free_pages(f: BinaryIO, page_size: int, head: bytes) -> set[int]:
    """Page numbers on the freelist (deleted rows live there), as far as it can be read."""
    free: set[int] = set()
    trunk = int.from_bytes(head[32:36], "big")
    while trunk and trunk not in free and len(free) < 1 << 24:
        free.add(trunk)
        f.seek((trunk - 1) * page_size)
        page = f.read(page_size)
        if len(page) < 8:
            break
        n = int.from_bytes(page[4:8], "big")
        if n > page_size // 4 - 2:
            break
        free.update(int.from_bytes(page[8 + 4 * k : 12 + 4 * k], "big") for k in range(n))
        trunk = int.from_bytes(page[0:4], "big")
    return free


def _pages(path: Path) -> Iterator[tuple[int, bytes]]:
    """(page number, page) for every page of the main file not on the freelist, then for
    every page image in the WAL."""
    with open(path, "rb") as f:
        head = f.read(100)
        page_size = int.from_bytes(head[16:18], "big") if len(head) == 100 else 4096
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1):
            page_size = 4096
        try:
            free = _free_pages(f, page_size, head)
        except (OSError, ValueError):
            free = set()
        f.seek(0)
        number = 0
        while page := f.read(page_size):
            number += 1
            if number not in free:
                yield number, page
    wal = Path(f"{path}-wal")
    if wal.exists():
        with open(wal, "rb") as f:
            head = f.read(32)
            size = int.from_bytes(head[8:12], "big") if len(head) == 32 else 0
            if size >= 512 and not size & (size - 1):
                while len(frame := f.read(24 + size)) == 24 + size:
                    yield int.from_bytes(frame[0:4], "big"), frame[24:]


def _scan_rows(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    """Readings rows found on any table-leaf page of the file or its WAL, in chunks.

    This reaches rows whose b-tree interior pages are lost (a truncated file loses the pages
    allocated last, and those are often the interior ones). A row's content never changes
    after insert, so any copy of a seq found is that reading; a row already deleted (acked)
    may come back from a stale page and be sent again, which the hub ignores by seq."""
    out: list[tuple[Any, ...]] = []
    for number, page in _pages(path):
        base = 100 if number == 1 else 0  # page 1 starts with the file header
        if len(page) < base + 8 or page[base] != 0x0D:  # 0x0D: a table b-tree leaf
            continue
        cells = int.from_bytes(page[base + 3 : base + 5], "big")
        for c in range(min(cells, len(page) // 4)):
            ptr = int.from_bytes(page[base + 8 + 2 * c : base + 10 + 2 * c], "big")
            if not base + 8 < ptr < len(page):
                continue
            try:
                row = _reading_cell(page, ptr)
            except (ValueError, IndexError, UnicodeDecodeError, struct.error):
                continue
            if row is not None:
                out.append(row)
        if len(out) >= _CHUNK:
            yield out
            out = []
    if out:
        yield out


def _copy_readings(
    src: sqlite3.Connection | None, path: Path, dst: sqlite3.Connection
) -> tuple[int, int]:
    """-> (rows saved, highest seq seen).

    First through SQLite (which also applies the WAL) by seq range, halving a failing range
    down to ``_MIN_SPAN``; then a raw scan of every page for rows under b-tree pages that
    SQLite could not get through. INSERT OR IGNORE on the seq keeps one copy of each."""
    top = 0
    if src is not None:
        seq_hi = _one(src, "SELECT seq FROM sqlite_sequence WHERE name = 'readings'") or 0
        lo = _one(src, "SELECT min(seq) FROM readings") or 1
        top = max(_one(src, "SELECT max(seq) FROM readings") or 0, seq_hi)
        for rows in _readable_ranges(src, lo, top):
            _insert(dst, rows)
    for rows in _scan_rows(path):
        _insert(dst, rows)
        top = max(top, max(int(r[0]) for r in rows))
    saved = int(dst.execute("SELECT n FROM backlog_count").fetchone()[0])
    return saved, top


def _insert(dst: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    dst.execute("BEGIN IMMEDIATE")
    # OR IGNORE: a seq already copied, or a garbage row that breaks NOT NULL, is skipped.
    dst.executemany(
        "INSERT OR IGNORE INTO readings(seq, key, ts, value, unit, received_at)"
        " VALUES (?,?,?,?,?,?)",
        rows,
    )
    dst.execute("COMMIT")


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> int:
    """Row by row, so one unreadable page loses only what the scan had not reached."""
    cols = [str(r[1]) for r in dst.execute(f'PRAGMA table_info("{table}")')]
    try:
        have = {str(r[1]) for r in src.execute(f'PRAGMA table_info("{table}")')}
    except sqlite3.DatabaseError:
        return 0
    cols = [c for c in cols if c in have]
    if not cols:
        return 0
    names = ", ".join(f'"{c}"' for c in cols)
    where = (
        f" WHERE k NOT IN ({', '.join(repr(k) for k in _VOLATILE_STATE)})"
        if table == "state"
        else ""
    )
    copied = 0
    dst.execute("BEGIN IMMEDIATE")
    try:
        cur = src.execute(f'SELECT {names} FROM "{table}"{where}')
        while True:
            try:
                row = cur.fetchone()
            except sqlite3.DatabaseError:
                break
            if row is None:
                break
            dst.execute(
                f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(cols))})',
                row,
            )
            copied += 1
    except sqlite3.DatabaseError:
        pass
    dst.execute("COMMIT")
    return copied


def _raise_sequence(dst: sqlite3.Connection, name: str, at_least: int) -> None:
    cur = dst.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (at_least, name)
    )
    if cur.rowcount == 0 and at_least > 0:
        dst.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (name, at_least))


def salvage(path: Path, dst: sqlite3.Connection, reason: str) -> Recovered:
    """Copy what is readable of ``path`` into ``dst`` (a new buffer with the schema made);
    record the recovery in dst's state table. ``path`` itself is not changed."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    moved_to = path.with_name(f"{path.name}.corrupt-{stamp}")
    src = _open_damaged(path)
    tables: set[str] = set()
    sequences: dict[str, int] = {}
    try:
        if src is not None:
            with contextlib.suppress(sqlite3.DatabaseError):
                tables = {
                    str(r[0])
                    for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            mine = {
                str(r[0]) for r in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for table in sorted((tables & mine) - _NOT_COPIED):
                _copy_table(src, dst, table)
            with contextlib.suppress(sqlite3.DatabaseError):
                sequences = {
                    str(n): int(s) for n, s in src.execute("SELECT name, seq FROM sqlite_sequence")
                }
        saved, top = _copy_readings(src if "readings" in tables else None, path, dst)
    finally:
        if src is not None:
            src.close()
    top = max(top, sequences.get("readings", 0), read_seq_mark(path))
    result = Recovered(now, reason, moved_to, saved, top)
    dst.execute("BEGIN IMMEDIATE")
    for name, seq in {**sequences, "readings": top}.items():
        _raise_sequence(dst, name, seq)
    dst.executemany(
        "INSERT INTO state(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
        [
            ("recovered_at", str(now)),
            ("recovered_reason", reason),
            ("recovered_moved_to", str(moved_to)),
            ("recovered_rows_saved", str(saved)),
        ],
    )
    dst.execute("COMMIT")
    return result


def _move(src: Path, dst: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, dst)


def swap_in(path: Path, tmp: Path, moved_to: Path) -> None:
    """The damaged file (and its WAL) aside, the salvaged one in its place.

    The WAL goes first: a damaged WAL left behind next to the new file would be replayed
    into it. A crash part-way is finished by :func:`finish_interrupted` at the next start."""
    for suffix in ("-wal", "-shm", ""):
        _move(Path(f"{path}{suffix}"), Path(f"{moved_to}{suffix}"))
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{tmp}{suffix}")  # closed after a TRUNCATE checkpoint: nothing in them
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        suspect_marker(path).unlink()


def _completed_salvage(tmp: Path) -> Path | None:
    """Where the damaged file goes, if ``tmp`` is a salvage that finished (its last
    transaction records that); None for one cut off while copying."""
    try:
        db = sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT v FROM state WHERE k = 'recovered_moved_to'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return None if row is None else Path(str(row[0]))


def finish_interrupted(path: Path) -> None:
    """A salvage cut off while copying left the damaged file in place: drop the partial
    copy, the salvage runs again. One cut off while swapping: finish the swap."""
    tmp = tmp_path(path)
    if not tmp.exists():
        return
    moved_to = _completed_salvage(tmp)
    if moved_to is not None:
        swap_in(path, tmp, moved_to)
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{tmp}{suffix}")


def report(r: Recovered) -> None:
    log.error(
        "buffer file was damaged; kept what could be read and started a new one",
        reason=r.reason,
        moved_to=str(r.moved_to),
        rows_saved=r.rows_saved,
        next_seq_after=r.max_seq,
    )

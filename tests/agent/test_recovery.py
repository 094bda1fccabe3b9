"""A damaged buffer file at start: real truncated and garbage files, every readable row kept."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import structlog

from agent import cli
from agent.buffer import Buffer, Reading, read_status, recovery

PAGE = 4096


def _fill(path: Path, n: int, *, acked: int = 0) -> None:
    b = Buffer(path)
    now = time.time()
    for start in range(0, n, 10_000):
        b.append(
            [
                Reading(f"l1/m1/s{i % 7}", 1_700_000_000 + i, float(i), "C", now)
                for i in range(start, min(n, start + 10_000))
            ]
        )
    b.ack(range(1, acked + 1))
    b.set_state(dropped=7)  # counters live in the state table and must survive a salvage
    b.close()


def _rows(b: Buffer) -> dict[int, float]:
    return {int(s): float(v) for s, v in b._db.execute("SELECT seq, value FROM readings")}


def test_a_healthy_file_is_opened_as_it_is(tmp_path: Path) -> None:
    _fill(tmp_path / "b.db", 1000)
    b = Buffer(tmp_path / "b.db")
    assert b.recovered is None and b.backlog == 1000
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
    b.close()


def test_truncated_file_keeps_every_readable_row_and_never_reuses_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    _fill(path, 60_000, acked=100)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size * 2 // 3 // PAGE * PAGE)
    with structlog.testing.capture_logs() as logs:
        b = Buffer(path)
    rec = b.recovered
    assert rec is not None and rec.reason.startswith("truncated")
    assert rec.moved_to.exists() and rec.moved_to.stat().st_size == size * 2 // 3 // PAGE * PAGE
    rows = _rows(b)
    # Some rows were on the pages cut off; everything else is here, value for seq, intact.
    assert 0 < len(rows) < 59_900 and rec.rows_saved == len(rows) == b.backlog
    assert all(rows[s] == float(s - 1) for s in rows) and min(rows) == 101
    assert b.state()["dropped"] == "7"
    b.append([Reading("l1/m1/s0", 1.0, 1.0, None, 1.0)])
    assert max(_rows(b)) == 60_001  # after the old max, even though its row was lost
    assert [e["log_level"] for e in logs if "damaged" in e["event"]] == ["error"]
    b.close()
    st = read_status(path, None, None)
    assert st.recovered is not None
    assert st.recovered.rows_saved == rec.rows_saved
    assert st.recovered.moved_to == str(rec.moved_to)
    assert st.backlog == rec.rows_saved + 1
    # The next start finds a healthy file: no second recovery.
    again = Buffer(path)
    assert again.recovered is None and again.backlog == rec.rows_saved + 1
    again.close()


def test_garbage_pages_in_the_middle_cost_only_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    _fill(path, 20_000)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 // PAGE * PAGE)
        f.write(b"\xff" * PAGE * 3)
    b = Buffer(path)
    rec = b.recovered
    assert rec is not None and ("quick_check" in rec.reason or "malformed" in rec.reason)
    rows = _rows(b)
    assert 19_000 < len(rows) < 20_000
    assert 1 in rows and 20_000 in rows and all(rows[s] == float(s - 1) for s in rows)
    b.close()


def test_a_file_that_is_not_sqlite_at_all_goes_on_from_the_seq_mark(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    b = Buffer(path)
    b.append([Reading("l1/m1/s0", 1.0, float(i), None, 1.0) for i in range(500)])
    b.make_durable(500)  # what the sync does before sending seqs 1..500
    b.close()
    path.write_bytes(os.urandom(PAGE * 4))
    b = Buffer(path)
    assert b.recovered is not None and b.recovered.rows_saved == 0
    assert "not a SQLite database" in b.recovered.reason
    b.append([Reading("l1/m1/s0", 1.0, 1.0, None, 1.0)])
    assert min(_rows(b)) > 500  # no seq the hub may have stored is handed out again
    b.close()


def test_a_salvage_cut_off_part_way_is_redone_or_finished(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    _fill(path, 5000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 4 // PAGE * PAGE])
    # Cut off while copying: a partial salvage file without the final state is thrown away.
    part = sqlite3.connect(recovery.tmp_path(path))
    part.execute("CREATE TABLE state (k TEXT PRIMARY KEY, v TEXT)")
    part.close()
    b = Buffer(path)
    assert b.recovered is not None and b.backlog == b.recovered.rows_saved > 0
    saved, moved_to = b.recovered.rows_saved, b.recovered.moved_to
    b.close()
    # Cut off while swapping: the damaged WAL already aside, the rest not yet.
    os.replace(path, recovery.tmp_path(path))  # stands in for the finished salvage
    path.write_bytes(b"damaged")
    b = Buffer(path)
    assert b.recovered is None and b.backlog == saved
    assert moved_to.read_bytes() == b"damaged" and not recovery.tmp_path(path).exists()
    b.close()


def test_big_files_get_cheap_checks_until_a_run_finds_a_bad_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "FULL_CHECK_MAX_BYTES", 0)  # every file counts as big
    path = tmp_path / "b.db"
    _fill(path, 20_000)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2 // PAGE * PAGE)
        f.write(b"\xff" * PAGE)
    b = Buffer(path)  # the ends of the b-tree read fine: starts at once, no full scan
    assert b.recovered is None and b.backlog == 20_000
    b.close()
    recovery.mark_suspect(path)  # what the service does when SQLite reports a corrupt page
    b = Buffer(path)
    assert b.recovered is not None and 19_000 < b.backlog < 20_000
    assert not recovery.suspect_marker(path).exists()
    b.close()


def test_status_shows_the_recovery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.db"
    _fill(path, 100)
    path.write_bytes(path.read_bytes()[: PAGE * 3])  # cut off after three pages
    Buffer(path).close()
    capsys.readouterr()  # the ERROR line the salvage logged
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'gateway_id = "gw-1"\n[buffer]\npath = "{path}"\n')
    assert cli.main(["status", "--config", str(cfg), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["recovered"]
    assert rec["moved_to"].startswith(f"{path}.corrupt-") and rec["reason"].startswith("trunc")
    assert cli.main(["status", "--config", str(cfg)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("recovered"))
    assert "damaged buffer found at" in line and "readings saved" in line

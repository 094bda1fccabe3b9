"""Every SQLite connection of the hub runs with the settings hub.storage.sqlite.pool names,
as SQLite itself reports them: a setting SQLite reads differently from how it was written
(``cache_spill=16384`` turns spilling off) fails here, not as a slow hub or a large one."""

from __future__ import annotations

from pathlib import Path

from hub.storage.sqlite.pool import SETTINGS, SQLitePool


def test_every_connection_reports_the_settings_it_was_given(tmp_path: Path) -> None:
    pool = SQLitePool(str(tmp_path / "hub.db"))
    try:
        written = dict(s.split("=", 1) for s in SETTINGS)
        for conn in (pool.connect(), pool.connect()):
            read = {
                name: str(conn.execute(f"PRAGMA {name}").fetchone()[0]).lower() for name in written
            }
            assert read == {
                "journal_mode": "wal",
                "synchronous": "1",  # NORMAL
                "busy_timeout": "5000",
                "foreign_keys": "1",
                "cache_size": "-8192",
                # Spilling on, past 16,000 pages (0 would mean off).
                "cache_spill": "16000",
                "temp_store": "2",  # MEMORY
                "wal_autocheckpoint": "10000",
                "journal_size_limit": str(64 * 1024 * 1024),
            }
    finally:
        pool.close()

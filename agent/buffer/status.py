"""What the buffer file says about the agent: the numbers behind ``edge-agent status``, the
metrics scrape and ``edge-agent drain``.

:func:`read_status` works from another process without taking any write lock: a read-only
connection and one snapshot (``BEGIN``) for every number, so they agree with each other.
:meth:`Status.to_dict` is the ``status --json`` object; its keys are part of the outside
contract (docs/operations.md, "Back up and inspect the buffer": scripts read ``backlog``,
``oldest_unsynced_age_s``, ``dead_letters``, ``dropped``, ``last_sync``) and are the
dataclass fields below, in this order.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.buffer.db import connect_readonly, read_state


@dataclass(frozen=True, slots=True)
class AlertCounts:
    open: int
    unsynced: int
    rules_version: int  # the hub's rules version in force (0: agent.toml's alone)


@dataclass(frozen=True, slots=True)
class LastSync:
    at: float
    result: str  # "ok" or "error: ..."
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class MqttState:
    connected: bool
    since: float | None


@dataclass(frozen=True, slots=True)
class AgentProcess:
    running: bool
    pid: int | None


@dataclass(frozen=True, slots=True)
class BufferFile:
    path: str
    bytes: int
    max_bytes: int | None
    when_full: str | None


@dataclass(frozen=True, slots=True)
class Recovery:
    """The last salvage of a damaged buffer file (agent.buffer.recovery)."""

    at: float
    reason: str
    moved_to: str
    rows_saved: int


@dataclass(frozen=True, slots=True)
class Status:
    backlog: int
    alerts: AlertCounts
    oldest_unsynced_age_s: float | None
    dead_letters: int
    dropped: int
    last_sync: LastSync | None
    last_sync_error: str | None
    mqtt: MqttState
    agent: AgentProcess
    buffer: BufferFile
    recovered: Recovery | None

    def to_dict(self) -> dict[str, Any]:
        """The ``edge-agent status --json`` object (nested dicts, None as null)."""
        return dataclasses.asdict(self)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_sync(state: dict[str, str]) -> LastSync | None:
    if "last_sync_at" not in state:
        return None
    return LastSync(
        at=float(state["last_sync_at"]),
        result=state.get("last_sync_result", ""),
        accepted=int(state.get("last_sync_accepted", "0")),
        duplicates=int(state.get("last_sync_duplicates", "0")),
    )


def _recovered(state: dict[str, str]) -> Recovery | None:
    if "recovered_at" not in state:
        return None
    return Recovery(
        at=float(state["recovered_at"]),
        reason=state.get("recovered_reason", ""),
        moved_to=state.get("recovered_moved_to", ""),
        rows_saved=int(state.get("recovered_rows_saved", "0")),
    )


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size + (
            os.stat(f"{path}-wal").st_size if os.path.exists(f"{path}-wal") else 0
        )
    except FileNotFoundError:
        return 0


def collect(
    db: sqlite3.Connection,
    path: Path,
    max_bytes: int | None,
    when_full: str | None,
    backlog: int | None = None,
) -> Status:
    """The status from ``db`` (the writer's connection, or a read-only snapshot).
    ``backlog``: the writer's in-memory count, when it has one."""
    if backlog is None:
        try:
            backlog = int(db.execute("SELECT n FROM backlog_count").fetchone()[0])
        except sqlite3.OperationalError:  # a buffer from before the counter existed
            backlog = int(db.execute("SELECT count(*) FROM readings").fetchone()[0])
    oldest = db.execute("SELECT received_at FROM readings ORDER BY seq LIMIT 1").fetchone()
    state = read_state(db)
    pid = int(state.get("pid", "0"))
    running = pid > 0 and _pid_alive(pid)
    try:
        open_alerts, unsynced_alerts = db.execute(
            "SELECT count(*) FILTER (WHERE closed_at IS NULL),"
            " count(*) FILTER (WHERE version > synced_version) FROM alerts"
        ).fetchone()
    except sqlite3.OperationalError:  # a buffer from before alerts existed
        open_alerts, unsynced_alerts = 0, 0
    return Status(
        backlog=backlog,
        alerts=AlertCounts(
            open=int(open_alerts),
            unsynced=int(unsynced_alerts),
            rules_version=int(state.get("rules_version", "0")),
        ),
        oldest_unsynced_age_s=None
        if oldest is None
        else round(max(0.0, time.time() - float(oldest[0])), 3),
        dead_letters=int(state.get("dead_letters_total", "0")),
        dropped=int(state.get("dropped", "0")),
        last_sync=_last_sync(state),
        last_sync_error=state.get("last_sync_error") or None,
        # A kill -9 leaves connected=1 behind; only a live agent process can be connected.
        mqtt=MqttState(
            connected=running and state.get("mqtt_connected") == "1",
            since=float(state["mqtt_since"]) if state.get("mqtt_since") else None,
        ),
        agent=AgentProcess(running=running, pid=pid if running else None),
        buffer=BufferFile(
            path=str(path), bytes=_file_bytes(path), max_bytes=max_bytes, when_full=when_full
        ),
        recovered=_recovered(state),
    )


def read_status(path: str | Path, max_bytes: int | None, when_full: str | None) -> Status:
    """The status from another process (``edge-agent status``), without any write lock."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no buffer at {path} (has the agent run yet?)")
    db = connect_readonly(path)
    try:
        db.execute("BEGIN")  # one snapshot for every number we report
        return collect(db, path, max_bytes, when_full)
    finally:
        db.close()

"""``edge-agent drain``: empty the buffer into the hub (before maintenance), with progress.

When the agent service runs on the same buffer it is already syncing, and a second syncer
would only send every batch twice (harmless - the hub dedupes - but wasteful); drain then
watches the backlog fall instead. Otherwise it runs the agent's own :class:`Syncer` (same
batching, retries and durability rules) until nothing is left.

Exit status: 0 drained; 1 no progress for ``--timeout`` seconds (hub unreachable or refusing),
with the last sync error; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from agent.buffer import Status, read_status
from agent.config import AgentConfig

POLL_S = 0.25


@dataclass
class Result:
    ok: bool
    sent: int
    seconds: float
    message: str


class _Bar:
    """A rich progress bar on stderr; on a non-terminal only the final state is printed."""

    def __init__(self, console: Console, total: int, what: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("readings"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(what, total=max(total, 1), rate="")
        self.started = time.monotonic()

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, done: int, total: int) -> None:
        elapsed = max(1e-6, time.monotonic() - self.started)
        self.progress.update(
            self.task, completed=done, total=max(total, 1), rate=f"{done / elapsed:,.0f}/s"
        )


class _Watch:
    """Progress accounting shared by both modes: the total grows if readings keep arriving."""

    def __init__(self, backlog: int, timeout_s: float) -> None:
        self.total = backlog
        self.low = backlog
        self.timeout_s = timeout_s
        self.last_progress = time.monotonic()

    def see(self, backlog: int) -> int:
        """Record the current backlog; returns readings done so far."""
        if backlog < self.low:
            self.low = backlog
            self.last_progress = time.monotonic()
        self.total = max(self.total, self.total - self.low + backlog)
        return self.total - backlog

    @property
    def stalled(self) -> bool:
        return time.monotonic() - self.last_progress > self.timeout_s


async def drain(cfg: AgentConfig, timeout_s: float, console: Console) -> Result:
    status = _status(cfg)
    if status.agent.running:
        console.print(
            f"edge-agent is running (pid {status.agent.pid}) on {cfg.buffer.path}: "
            "watching its sync drain the backlog"
        )
        return await _watch_service(cfg, timeout_s, console)
    return await _sync_myself(cfg, timeout_s, console)


def _status(cfg: AgentConfig) -> Status:
    return read_status(cfg.buffer.path, cfg.buffer.max_bytes, cfg.buffer.when_full)


async def _loop(
    watch: _Watch,
    bar: _Bar,
    read: Callable[[], tuple[int, bool, str | None]],
) -> tuple[bool, str]:
    """Poll ``read`` -> (backlog, finished, last error) until finished or stalled."""
    while True:
        backlog, finished, error = read()
        bar.update(watch.see(backlog), watch.total)
        if finished:
            return True, ""
        if watch.stalled:
            why = error or "no progress"
            return False, f"no progress for {watch.timeout_s:g}s: {why}"
        await asyncio.sleep(POLL_S)


async def _watch_service(cfg: AgentConfig, timeout_s: float, console: Console) -> Result:
    st = _status(cfg)
    watch = _Watch(st.backlog, timeout_s)
    started = time.monotonic()

    def read() -> tuple[int, bool, str | None]:
        s = _status(cfg)
        if not s.agent.running:
            raise _AgentStopped
        return s.backlog, s.backlog == 0, s.last_sync_error

    with _Bar(console, watch.total, "draining (agent service)") as bar:
        try:
            ok, message = await _loop(watch, bar, read)
        except _AgentStopped:
            ok, message = False, "the agent service stopped while draining; run drain again"
    return Result(ok, watch.total - watch.low, time.monotonic() - started, message)


class _AgentStopped(Exception):
    pass


async def _sync_myself(cfg: AgentConfig, timeout_s: float, console: Console) -> Result:
    # Imported here: the watch mode never opens the buffer for writing nor loads the rules.
    from agent.rules import wire_alert
    from agent.service import open_buffer
    from agent.sync import Syncer

    buffer = open_buffer(cfg)
    stopping = asyncio.Event()
    syncer = Syncer(cfg, buffer, wire_alert=wire_alert)
    watch = _Watch(buffer.backlog, timeout_s)
    started = time.monotonic()

    def read() -> tuple[int, bool, str | None]:
        if task.done():
            task.result()  # the syncer died: its exception ends the drain
            raise RuntimeError("the sync stopped unexpectedly")
        backlog = buffer.backlog
        done = backlog == 0 and buffer.alerts_pending() == 0
        error = buffer.state().get("last_sync_error") or None
        return backlog, done, error

    task = asyncio.create_task(syncer.run(stopping), name="drain-sync")
    try:
        with _Bar(console, watch.total, "draining") as bar:
            ok, message = await _loop(watch, bar, read)
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, cfg.hub.timeout_s + 5)
        buffer.close()
    return Result(ok, watch.total - watch.low, time.monotonic() - started, message)

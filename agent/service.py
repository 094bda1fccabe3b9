"""The running agent: buffer + ingest + sync under one TaskGroup, with a clean shutdown.

SIGTERM/SIGINT set ``stopping``: ingest stops taking messages, commits and acks the batch in
hand and disconnects (the persistent session keeps everything after it at the broker); sync
lets a request that is already on the wire finish, bounded by ``shutdown_timeout_s``, since its
answer decides whether those rows get deleted. Whatever is cut off is simply sent again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3

import structlog

from agent import metrics as agent_metrics
from agent import mqtt
from agent.buffer import Buffer, recovery
from agent.config import AgentConfig
from agent.ingest import Ingest
from agent.rules import Alerting, Rules, RulesSync, wire_alert
from agent.sync import Syncer

log = structlog.get_logger("agent.service")


def sd_notify(state: str) -> bool:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(addr)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify failed", error=str(exc))
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings when systemd asked for them (WatchdogSec=), else None.

    Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends, so one late tick is not yet
    a restart. WATCHDOG_PID names the process meant; a child that inherited the environment
    must not ping on its parent's behalf.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


async def _watchdog(stopping: asyncio.Event, every_s: float) -> None:
    # Pinged from the event loop itself: a loop blocked by a hung call stops the pings, and
    # systemd kills and restarts the agent (Restart=on-failure).
    while not stopping.is_set():
        sd_notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_s)


def open_buffer(cfg: AgentConfig) -> Buffer:
    b = cfg.buffer
    return Buffer(
        b.path,
        b.max_bytes,
        b.when_full,
        max_dead_letters=b.max_dead_letters,
        durability=b.durability,
    )


async def run(cfg: AgentConfig, stopping: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stopping`` is set); returns the exit status."""
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _on_signal, sig, stopping)
    buffer = open_buffer(cfg)
    # pid lets `status` tell a live agent's "connected" from one a kill -9 left behind.
    buffer.set_state(pid=os.getpid(), mqtt_connected=0)
    log.info(
        f"edge-agent started gateway_id={cfg.gateway_id} buffer={cfg.buffer.path}",
        backlog=buffer.backlog,
        broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}",
        hub=cfg.hub.url,
    )
    new_data = asyncio.Event()
    space_freed = asyncio.Event()
    ready_sent = False

    def on_subscribed() -> None:
        nonlocal ready_sent
        if not ready_sent:
            ready_sent = sd_notify("READY=1\nSTATUS=subscribed")

    # The last rules the hub sent (persisted) are in force before the hub is asked again.
    rules = Rules(cfg, buffer)
    # One link to the broker: ingest connects it, alerts are published on it.
    link = mqtt.Link(
        cfg.mqtt, cfg.client_id, publish_qos=cfg.alerts.qos, publish_retain=cfg.alerts.retain
    )
    alerting = Alerting(cfg, buffer, rules, publisher=link)
    rules_sync = RulesSync(cfg, rules, alerting)
    ingest = Ingest(
        cfg,
        buffer,
        link=link,
        new_data=new_data,
        space_freed=space_freed,
        on_subscribed=on_subscribed,
        alerting=alerting,
    )
    syncer = Syncer(
        cfg,
        buffer,
        wake=new_data,
        space_freed=space_freed,
        on_config_version=rules_sync.on_config_version,
        wire_alert=wire_alert,
        marks=ingest.sparkplug.marks if ingest.sparkplug is not None else None,
    )
    listener = agent_metrics.serve(
        cfg.metrics.listen,
        agent_metrics.BufferCollector(
            cfg.buffer.path,
            cfg.buffer.max_bytes,
            cfg.buffer.when_full,
            messages_received=lambda: ingest.committed_messages,
        ),
    )
    try:
        async with asyncio.TaskGroup() as tg:
            ingest_task = tg.create_task(ingest.run(stopping), name="ingest")
            sync_task = tg.create_task(syncer.run(stopping), name="sync")
            rules_task = tg.create_task(rules_sync.run(stopping), name="rules")
            watchdog_s = watchdog_interval()
            if watchdog_s is not None:
                tg.create_task(_watchdog(stopping, watchdog_s), name="watchdog")
            tg.create_task(
                _bounded_shutdown(
                    stopping, [ingest_task, sync_task, rules_task], cfg.shutdown_timeout_s
                )
            )
    except* sqlite3.DatabaseError as eg:
        # A corrupt page the start-up check did not read (a large file gets only the cheap
        # checks): make the next start check every page, salvage, and go on (agent.buffer.recovery).
        # (OperationalError - locked, disk full - says nothing about the file's pages.)
        if any(not isinstance(e, sqlite3.OperationalError) for e in eg.exceptions):
            log.error("buffer file is damaged; the next start will salvage it", error=str(eg))
            recovery.mark_suspect(buffer.path)
        raise
    finally:
        sd_notify("STOPPING=1")
        if listener is not None:
            listener.close()
        with contextlib.suppress(Exception):
            buffer.set_state(mqtt_connected=0, pid=0)
        buffer.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("edge-agent stopped", backlog=buffer.backlog)
    return 0


def _on_signal(sig: signal.Signals, stopping: asyncio.Event) -> None:
    log.info("stopping", signal=sig.name)
    stopping.set()


async def _bounded_shutdown(
    stopping: asyncio.Event, tasks: list[asyncio.Task[None]], grace_s: float
) -> None:
    # Either half ending on its own (it should not) also ends the other: an agent that only
    # ingests or only syncs is worse than one systemd restarts.
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopping.set()
    stop.cancel()
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        log.warning("shutdown timeout, cancelling", task=task.get_name())
        task.cancel()

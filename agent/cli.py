"""``edge-agent``: run | status | drain | check-config; each takes ``--config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.buffer import read_status
from agent.config import AgentConfig
from shared import __version__
from shared.config import ConfigError, load_settings
from shared.logs import configure_logging
from shared.timeutil import to_rfc3339

DEFAULT_CONFIG = "agent.toml"


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    env = os.environ.get("EDGE_AGENT_CONFIG")
    if env:
        return env
    # No file given and none here: settings may still come entirely from EDGE_AGENT_*.
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None


def _load(args: argparse.Namespace) -> AgentConfig:
    return load_settings(AgentConfig, _config_path(args.config))


def cmd_run(args: argparse.Namespace) -> int:
    from agent import service

    cfg = _load(args)
    configure_logging(cfg.log_level, cfg.log_format)
    return asyncio.run(service.run(cfg))


def cmd_drain(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agent.drain import drain

    cfg = _load(args)
    # Warnings only: the progress bar is the output, and the syncer logs every retry.
    configure_logging("warning", cfg.log_format)
    try:
        read_status(cfg.buffer.path, cfg.buffer.max_bytes, cfg.buffer.when_full)
    except FileNotFoundError as exc:
        print(f"edge-agent drain: {exc}", file=sys.stderr)
        return 1
    console = Console(stderr=True)
    result = asyncio.run(drain(cfg, args.timeout, console))
    if not result.ok:
        print(f"edge-agent drain: {result.message} ({result.sent} sent)", file=sys.stderr)
        return 1
    print(f"drained: {result.sent} readings in {result.seconds:.1f}s", file=sys.stderr)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(
        f"config OK: gateway_id={cfg.gateway_id} broker={cfg.mqtt.host}:{cfg.mqtt.port} "
        f"buffer={cfg.buffer.path} hub={cfg.hub.url}"
    )
    if not cfg.hub.token:
        print("warning: hub.token is empty; the hub will answer 401", file=sys.stderr)
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def status_document(cfg: AgentConfig) -> dict[str, Any]:
    """What ``status --json`` prints: the buffer's status and the gateway's id. Raises
    FileNotFoundError while the agent has made no buffer yet."""
    st = read_status(cfg.buffer.path, cfg.buffer.max_bytes, cfg.buffer.when_full)
    return {**st.to_dict(), "gateway_id": cfg.gateway_id}


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    try:
        if args.json:
            print(json.dumps(status_document(cfg)))
            return 0
        st = read_status(cfg.buffer.path, cfg.buffer.max_bytes, cfg.buffer.when_full)
    except FileNotFoundError as exc:
        print(f"edge-agent status: {exc}", file=sys.stderr)
        return 1
    last, mqtt, buf = st.last_sync, st.mqtt, st.buffer
    rows = [
        ("gateway", cfg.gateway_id),
        ("agent", f"running (pid {st.agent.pid})" if st.agent.running else "not running"),
        (
            "mqtt",
            ("connected" if mqtt.connected else "disconnected")
            + (f" since {to_rfc3339(mqtt.since)}" if mqtt.since else ""),
        ),
        ("backlog", f"{st.backlog} readings"),
        ("oldest unsynced", _age(st.oldest_unsynced_age_s)),
        (
            "last sync",
            "never"
            if last is None
            else f"{last.result} at {to_rfc3339(last.at)} ({_age(time.time() - last.at)} ago)"
            + (
                f", accepted {last.accepted}, duplicates {last.duplicates}"
                if last.result == "ok"
                else ""
            ),
        ),
        ("dead letters", str(st.dead_letters)),
        ("dropped", str(st.dropped)),
        (
            "buffer",
            f"{buf.path} {buf.bytes / 1e6:.1f} MB of {(buf.max_bytes or 0) / 1e6:.1f} MB"
            f" (when full: {buf.when_full})",
        ),
    ]
    rec = st.recovered
    if rec:
        rows.append(
            (
                "recovered",
                f"damaged buffer found at {to_rfc3339(rec.at)} ({rec.reason}): "
                f"{rec.rows_saved} readings saved; damaged file kept as {rec.moved_to}",
            )
        )
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="factory-edge gateway agent: MQTT -> durable SQLite buffer -> hub.",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config",
            metavar="FILE",
            help=f"agent TOML config (default: $EDGE_AGENT_CONFIG, else ./{DEFAULT_CONFIG})",
        )
        return p

    add("run", "run the agent until SIGTERM/SIGINT").set_defaults(func=cmd_run)
    status = add(
        "status",
        "backlog, oldest unsynced reading, last sync, dead letters "
        "(reads the buffer file; works while the agent runs)",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)
    drain = add(
        "drain",
        "sync until the buffer is empty, with a progress bar and ETA (e.g. before "
        "maintenance); watches instead when the agent service is running on the same buffer",
    )
    drain.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="give up (exit 1) after this long without progress, e.g. hub unreachable "
        "(default: 120)",
    )
    drain.set_defaults(func=cmd_drain)
    add("check-config", "validate the config file and exit").set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

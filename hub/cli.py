"""``edge-hub``: serve the API, manage gateways and tokens, check a config.

Exit status: 0 ok, 1 the operation failed (gateway exists, port busy, database unusable),
2 bad usage, bad configuration or an unknown id. A new token goes to stdout alone, a list
to stdout as a table or JSON; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from hub.auth import generate_token, hash_token
from hub.config import HubSettings
from hub.config_view import masked_settings
from hub.storage import Conflict, Storage, StorageError, open_storage
from hub.storage.url import parse_database
from shared import __version__
from shared.config import ConfigError, load_settings
from shared.ids import gateway_id_problem
from shared.logs import configure_logging
from shared.timeutil import to_rfc3339

if TYPE_CHECKING:
    from hub.app import Hub

log = structlog.get_logger("hub.cli")

# How long a stop signal waits for requests already inside a handler.
DRAIN_S = 10.0
FLUSH_S = 0.2


# Where the commands print: the process's streams, or the ones main() was given by a caller
# running a command in its own process (devtools.stack.hub_cli). A context variable, so other
# threads of that process keep printing to theirs.
_STREAMS: contextvars.ContextVar[tuple[TextIO, TextIO] | None] = contextvars.ContextVar(
    "edge_hub_cli_streams", default=None
)


def _out() -> TextIO:
    given = _STREAMS.get()
    return sys.stdout if given is None else given[0]


def _err() -> TextIO:
    given = _STREAMS.get()
    return sys.stderr if given is None else given[1]


def config_path(given: str | None) -> str | None:
    """--config, else $EDGE_HUB_CONFIG, else ./hub.toml when present, else None (defaults)."""
    if given:
        return given
    env = os.environ.get("EDGE_HUB_CONFIG")
    if env:
        return env
    return "hub.toml" if Path("hub.toml").is_file() else None


def _open_storage(settings: HubSettings) -> Storage:
    storage = open_storage(settings.database)
    storage.init_schema()
    return storage


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None when it can."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the server's own bind: a port left in TIME_WAIT is fine, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def install_stop_handlers(hub: Hub) -> None:
    """Exit 0 promptly on SIGTERM/SIGINT.

    Robyn 0.88 does not stop on SIGTERM by itself (issue #1324): actix starts a graceful
    shutdown but the Python event loop keeps the process alive. Exiting with os._exit is
    safe for our data: every batch is one SQLite transaction, a committed one is in the WAL
    and survives the process, and an uncommitted one is rolled back on the next open, which
    the agent sees as a failed request and retries (ingest is idempotent). We still give
    requests that are inside a handler a moment to finish, so their clients get an answer.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        deadline = time.monotonic() + DRAIN_S
        while hub.inflight > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # A handler that returned has not necessarily had its response written yet: give
        # actix a moment to flush, or a committed batch looks failed to its agent.
        time.sleep(FLUSH_S)
        # Leave a self-contained database file behind (backups, the next start's open);
        # not needed for durability, the WAL alone would be replayed.
        try:
            hub.storage.checkpoint()
        except Exception as exc:
            log.warning("checkpoint at stop failed", error=str(exc))
        log.info("edge-hub stopped", signal=signal.Signals(signum).name)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def cmd_serve(settings: HubSettings, args: argparse.Namespace) -> int:
    from hub.supervisor import is_worker, supervise

    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and not is_worker():
        # Migrate and check the port once, before any worker starts.
        _open_storage(settings).close()
        problem = port_problem(settings.host, settings.port)
        if problem:
            print(f"edge-hub: cannot listen on {settings.listen}: {problem}", file=_err())
            return 1
        return supervise(settings.workers, args.config_file)
    storage = _open_storage(settings)
    storage.maintain_rollups = settings.rollups
    # A worker's siblings hold the port already (SO_REUSEPORT); the supervisor checked it.
    problem = None if is_worker() else port_problem(settings.host, settings.port)
    if problem:
        print(f"edge-hub: cannot listen on {settings.listen}: {problem}", file=_err())
        return 1
    from hub.app import create_app

    app, hub = create_app(settings, storage)
    install_stop_handlers(hub)
    if settings.anomaly_scan_interval_s > 0:
        from hub.worker import AnomalyScanner

        AnomalyScanner(
            storage,
            hub.anomaly,
            interval_s=settings.anomaly_scan_interval_s,
            limit=settings.anomaly_scan_limit,
            threshold=settings.anomaly_scan_threshold,
            method=settings.anomaly_scan_method,
        ).start()
    from hub.notify import WebhookSender
    from hub.worker import AlertWatch

    AlertWatch(
        storage,
        offline_after_s=settings.alerts.gateway_offline_after_s,
        interval_s=settings.alerts.check_interval_s,
    ).start()
    if settings.webhooks:
        WebhookSender(storage, settings.webhooks).start()
    from hub.retention import RetentionJob

    RetentionJob(storage, settings.retention).start()
    url = f"http://{settings.host}:{settings.port}"
    print(f"edge-hub listening on {url}", file=_err(), flush=True)
    # _check_port=False: Robyn's own check prompts on stdin for another port.
    app.start(host=settings.host, port=settings.port, _check_port=False)
    return 0


def cmd_gateway_add(settings: HubSettings, args: argparse.Namespace) -> int:
    ids: list[str] = args.id
    for gateway_id in ids:
        problem = gateway_id_problem(gateway_id)
        if problem is not None:
            print(f"edge-hub: gateway id {gateway_id!r} {problem}", file=_err())
            return 2
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        print(f"edge-hub: gateway id given twice: {', '.join(twice)}", file=_err())
        return 2
    factory = args.factory.strip()
    if not factory or len(factory) > 128:
        print("edge-hub: --factory must be 1-128 characters", file=_err())
        return 2
    hint = "" if args.rotate else " (use --rotate to issue a new token and revoke the old)"
    with contextlib.closing(_open_storage(settings)) as storage:
        # Refuse before registering any: a half-done list would leave tokens nobody saw.
        if not args.rotate:
            taken = [i for i in ids if storage.get_gateway(i) is not None]
            if taken:
                listed = ", ".join(taken)
                print(f"edge-hub: gateway already exists: {listed}{hint}", file=_err())
                return 1
        for gateway_id in ids:
            token = generate_token("gateway")
            try:
                storage.add_gateway(gateway_id, factory, hash_token(token), rotate=args.rotate)
            except Conflict as exc:
                print(f"edge-hub: {exc}{hint}", file=_err())
                return 1
            # Each token is printed as soon as it exists: it is shown this once only.
            print(token if len(ids) == 1 else f"{gateway_id} {token}", file=_out(), flush=True)
    return 0


def cmd_migrate(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_storage(settings.database)) as storage:
        before = storage.schema_version()
        ran = storage.migrate()
        after = storage.schema_version()
    where = parse_database(settings.database).describe()
    if ran:
        print(f"{where}: schema {before} -> {after} ({ran} migration(s))", file=_err())
    else:
        print(f"{where}: schema {after}, up to date", file=_err())
    return 0


def cmd_copy_data(settings: HubSettings, args: argparse.Namespace) -> int:
    from hub.storage.copy import copy_data

    try:
        target = parse_database(args.to)
    except StorageError as exc:
        print(f"edge-hub: --to: {exc}", file=_err())
        return 2
    source = parse_database(settings.database)
    if target == source:
        print("edge-hub: --to names the configured database itself", file=_err())
        return 2
    with (
        contextlib.closing(_open_storage(settings)) as src,
        contextlib.closing(open_storage(args.to)) as dst,
    ):
        dst.migrate()
        print(f"copying {source.describe()} -> {target.describe()}", file=_err())
        report = copy_data(src, dst, lambda line: print(f"  {line}", file=_err()))
    print(
        f"done: {sum(report.tables.values())} rows in {len(report.tables)} tables, "
        f"{report.readings_seen} readings ({report.readings_new} new)",
        file=_err(),
    )
    return 0


def cmd_token_add(settings: HubSettings, args: argparse.Namespace) -> int:
    storage = _open_storage(settings)
    token = generate_token(args.role)
    try:
        storage.add_token(args.role, hash_token(token))
    finally:
        storage.close()
    print(token, file=_out())
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else to_rfc3339(ts)


def _print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows), file=_out())
        return
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        line_text = "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
        print(line_text.rstrip(), file=_out())


def cmd_token_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(_open_storage(settings)) as storage:
        tokens = storage.list_tokens()
    rows = [
        {
            "id": t["id"],
            "role": t["role"],
            "gateway": t["gateway"] or "-",
            "created": _when(t["created_at"]),
            "state": "revoked" if t["revoked"] else "active",
        }
        for t in tokens
    ]
    _print_rows(rows, ["id", "role", "gateway", "created", "state"], args.json)
    return 0


def cmd_token_revoke(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(_open_storage(settings)) as storage:
        found = storage.revoke_token(args.id)
    if not found:
        print(f"edge-hub: no token with id {args.id} (see `edge-hub token list`)", file=_err())
        return 2
    print(f"token {args.id} revoked", file=_err())
    return 0


def cmd_gateway_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(_open_storage(settings)) as storage:
        gateways = storage.list_gateways()
    rows = [
        {
            "id": g["name"],
            "factory": g["factory"],
            "created": _when(g["created_at"]),
            "last_seen": _when(g["last_seen"]),
            "backlog": g["backlog"],
            "state": "revoked" if g["revoked"] else "active",
        }
        for g in gateways
    ]
    _print_rows(rows, ["id", "factory", "created", "last_seen", "backlog", "state"], args.json)
    return 0


def cmd_gateway_revoke(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(_open_storage(settings)) as storage:
        found = storage.revoke_gateway(args.id)
    if not found:
        print(f"edge-hub: no gateway {args.id!r} (see `edge-hub gateway list`)", file=_err())
        return 2
    print(
        f"gateway {args.id!r} revoked: its tokens get 401 from now on; its data stays "
        f"(`edge-hub gateway add {args.id} --factory NAME --rotate` re-enables it)",
        file=_err(),
    )
    return 0


def cmd_check_config(settings: HubSettings, args: argparse.Namespace) -> int:
    print(f"configuration OK ({args.config_file or 'defaults and environment'})", file=_out())
    for key, value in masked_settings(settings).items():
        print(f"  {key} = {value!r}", file=_out())
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before and after the subcommand; SUPPRESS keeps the
    # subcommand's absent option from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="hub.toml (default: $EDGE_HUB_CONFIG, else ./hub.toml if present, "
        "else built-in defaults)",
    )
    parser = argparse.ArgumentParser(
        prog="edge-hub",
        parents=[common],
        description="factory-edge hub: idempotent ingest from gateways and a query API.",
    )
    parser.add_argument("--version", action="version", version=f"edge-hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "serve", parents=[common], help="run the HTTP API (migrates the database first)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="bring the configured database to this release's schema, keeping all data",
        description="Apply the schema migrations the database lacks (SQLite or PostgreSQL). "
        "Safe while hubs run or start: concurrent migrations wait for each other.",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "copy-data",
        parents=[common],
        help="copy every gateway, token hash, sensor, reading, alert and setting to --to",
        description="Copy the configured database into the one --to names (SQLite -> "
        "PostgreSQL), migrating it first. Safe to re-run: rows keep their ids and are "
        "updated in place, a reading is never doubled, and every token keeps working.",
    )
    p.add_argument(
        "--to", required=True, metavar="URL", help="the destination, e.g. postgresql://..."
    )
    p.set_defaults(func=cmd_copy_data)

    gw = sub.add_parser("gateway", parents=[common], help="manage gateways")
    gw_sub = gw.add_subparsers(dest="gateway_command", required=True, metavar="ACTION")
    p = gw_sub.add_parser(
        "add",
        parents=[common],
        help="register gateways and print their tokens (once)",
        description="Register gateways in factory NAME. With one ID, print its token alone on "
        "stdout; with several, one 'ID TOKEN' line each. An existing gateway is an error "
        "(and nothing is registered) unless --rotate, which revokes its old tokens.",
    )
    p.add_argument(
        "id", metavar="ID", nargs="+", help="gateway ids, as in each agent.toml's gateway_id"
    )
    p.add_argument("--factory", required=True, metavar="NAME", help="the factory they belong to")
    p.add_argument(
        "--rotate",
        action="store_true",
        help="if the gateway exists: revoke its tokens and issue a new one",
    )
    p.set_defaults(func=cmd_gateway_add)
    p = gw_sub.add_parser(
        "list",
        parents=[common],
        help="list gateways: factory, created, last seen, backlog, state",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_gateway_list)
    p = gw_sub.add_parser(
        "revoke",
        parents=[common],
        help="revoke a gateway: its tokens stop working (401), its data stays",
        description="Revoke gateway ID and every token it has. Exit 2 if there is no such "
        "gateway. `gateway add ID --factory NAME --rotate` re-enables it with a new token.",
    )
    p.add_argument("id", metavar="ID", help="the gateway id, as shown by `gateway list`")
    p.set_defaults(func=cmd_gateway_revoke)

    tok = sub.add_parser("token", parents=[common], help="manage tokens")
    tok_sub = tok.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = tok_sub.add_parser(
        "add",
        parents=[common],
        help="mint an operator token and print it (once)",
        description="Mint a read, operator or admin token and print it alone on stdout.",
    )
    p.add_argument(
        "--role",
        required=True,
        choices=["read", "operator", "admin"],
        help="read: queries only; operator: also acknowledges and shelves alerts; "
        "admin: also changes settings (thresholds, rules)",
    )
    p.set_defaults(func=cmd_token_add)
    p = tok_sub.add_parser(
        "list",
        parents=[common],
        help="list tokens: id, role, gateway, created, state (never the token)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_token_list)
    p = tok_sub.add_parser(
        "revoke",
        parents=[common],
        help="revoke one token by id: its next request gets 401",
        description="Revoke the token with this id (from `token list`). Exit 2 if unknown.",
    )
    p.add_argument("id", metavar="ID", type=int, help="the token id, from `token list`")
    p.set_defaults(func=cmd_token_revoke)

    p = sub.add_parser("check-config", parents=[common], help="validate the configuration")
    p.set_defaults(func=cmd_check_config)
    return parser


def main(
    argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """The ``edge-hub`` command. ``stdout``/``stderr``: where a command prints instead of the
    process's streams (for a caller that runs it in-process)."""
    if stdout is not None or stderr is not None:
        streams = _STREAMS.set((stdout or sys.stdout, stderr or sys.stderr))
        try:
            return main(argv)
        finally:
            _STREAMS.reset(streams)
    args = build_parser().parse_args(argv)
    args.config_file = config_path(getattr(args, "config", None))
    try:
        settings = load_settings(HubSettings, args.config_file)
    except ConfigError as exc:
        print(f"edge-hub: {exc}", file=_err())
        return 2
    try:
        code: int = args.func(settings, args)
    except StorageError as exc:
        print(f"edge-hub: {exc}", file=_err())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

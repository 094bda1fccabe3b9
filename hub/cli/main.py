"""``edge-hub``: its parser, its database commands (migrate, copy-data, check-config), main().

Exit status: 0 ok, 1 the operation failed (gateway exists, port busy, database unusable),
2 bad usage, bad configuration or an unknown id. A new token goes to stdout alone, a list
to stdout as a table or JSON; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from hub.cli.accounts import (
    cmd_gateway_add,
    cmd_gateway_list,
    cmd_gateway_revoke,
    cmd_token_add,
    cmd_token_list,
    cmd_token_revoke,
)
from hub.cli.grafana import add_parser as add_grafana_parser
from hub.cli.serve import cmd_serve
from hub.cli.streams import STREAMS, err, open_migrated, out
from hub.cli.users import add_parsers as add_user_parsers
from hub.config import HubSettings
from hub.config_view import masked_settings
from hub.storage import StorageError, open_storage
from hub.storage.url import parse_database
from shared import __version__
from shared.config import ConfigError, load_settings


def config_path(given: str | None) -> str | None:
    """--config, else $EDGE_HUB_CONFIG, else ./hub.toml when present, else None (defaults)."""
    if given:
        return given
    env = os.environ.get("EDGE_HUB_CONFIG")
    if env:
        return env
    return "hub.toml" if Path("hub.toml").is_file() else None


def cmd_migrate(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_storage(settings.database, settings.database_waits())) as storage:
        before = storage.schema_version()
        ran = storage.migrate()
        after = storage.schema_version()
    where = parse_database(settings.database).describe()
    if ran:
        print(f"{where}: schema {before} -> {after} ({ran} migration(s))", file=err())
    else:
        print(f"{where}: schema {after}, up to date", file=err())
    return 0


def cmd_copy_data(settings: HubSettings, args: argparse.Namespace) -> int:
    from hub.storage.copy import copy_data

    try:
        target = parse_database(args.to)
    except StorageError as exc:
        print(f"edge-hub: --to: {exc}", file=err())
        return 2
    source = parse_database(settings.database)
    if target == source:
        print("edge-hub: --to names the configured database itself", file=err())
        return 2
    with (
        contextlib.closing(open_migrated(settings)) as src,
        contextlib.closing(open_storage(args.to)) as dst,
    ):
        dst.migrate()
        print(f"copying {source.describe()} -> {target.describe()}", file=err())
        report = copy_data(src, dst, lambda line: print(f"  {line}", file=err()))
    print(
        f"done: {sum(report.tables.values())} rows in {len(report.tables)} tables, "
        f"{report.readings_seen} readings ({report.readings_new} new)",
        file=err(),
    )
    return 0


def cmd_check_config(settings: HubSettings, args: argparse.Namespace) -> int:
    print(f"configuration OK ({args.config_file or 'defaults and environment'})", file=out())
    for key, value in masked_settings(settings).items():
        print(f"  {key} = {value!r}", file=out())
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
    p.add_argument(
        "--factory",
        action="append",
        metavar="NAME",
        help="limit the token to this factory (repeat for several; none: every factory)",
    )
    p.add_argument(
        "--name",
        metavar="LABEL",
        help='what the token is for, e.g. "nightly export": shown in `token list` and as who '
        "acted in the alert journal, the audit log and webhooks",
    )
    p.set_defaults(func=cmd_token_add)
    p = tok_sub.add_parser(
        "list",
        parents=[common],
        help="list tokens: id, name, role, gateway, factories, created, state (never the token)",
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

    add_user_parsers(sub, common)
    add_grafana_parser(sub, common)

    p = sub.add_parser("check-config", parents=[common], help="validate the configuration")
    p.set_defaults(func=cmd_check_config)
    return parser


def main(
    argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """The ``edge-hub`` command. ``stdout``/``stderr``: where a command prints instead of the
    process's streams (for a caller that runs it in-process)."""
    if stdout is not None or stderr is not None:
        streams = STREAMS.set((stdout or sys.stdout, stderr or sys.stderr))
        try:
            return main(argv)
        finally:
            STREAMS.reset(streams)
    args = build_parser().parse_args(argv)
    args.config_file = config_path(getattr(args, "config", None))
    try:
        settings = load_settings(HubSettings, args.config_file)
    except ConfigError as exc:
        print(f"edge-hub: {exc}", file=err())
        return 2
    try:
        code: int = args.func(settings, args)
    except StorageError as exc:
        print(f"edge-hub: {exc}", file=err())
        return 1
    return code

"""``edge-hub grafana-role``: the PostgreSQL role Grafana's bundled data source logs in as
(docs/grafana.md). It reads the views grafana_readings, grafana_rollups and grafana_alerts and
nothing else; the command makes it, or sets its password when it exists.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from typing import Any

from hub.cli.streams import err, open_migrated
from hub.config import HubSettings
from hub.storage.postgres import PostgresStorage
from hub.storage.postgres.grafana import VIEWS, RoleRefused
from hub.storage.url import parse_database

# PostgreSQL's rule for a name written without quotes, in lower case only: such a name is the
# same whether or not a tool quotes it, and Grafana's user field takes it as typed.
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
NAME_MAX_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL would cut a longer name short
# Names PostgreSQL keeps for itself: "pg_" roles are its predefined ones, the others are
# words CREATE ROLE refuses.
_RESERVED = frozenset({"public", "none", "current_user", "session_user", "current_role"})


def name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name):
        return (
            f"role name {name!r} must be lower-case letters, digits and _, "
            "not starting with a digit"
        )
    if len(name.encode()) > NAME_MAX_BYTES:
        return f"role name {name!r} is longer than {NAME_MAX_BYTES} characters"
    if name.startswith("pg_") or name in _RESERVED:
        return f"role name {name!r} is reserved by PostgreSQL"
    return None


def _read_password() -> str | None:
    """The password: stdin's first line without its line ending; None after saying why it
    cannot be used."""
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("edge-hub: --password-stdin: no password on stdin (one line)", file=err())
        return None
    if "\x00" in password:
        print("edge-hub: --password-stdin: the password contains a NUL character", file=err())
        return None
    return password


def cmd_grafana_role(settings: HubSettings, args: argparse.Namespace) -> int:
    database = parse_database(settings.database)
    if database.engine != "postgresql":
        print(
            f"edge-hub: grafana-role needs PostgreSQL; the configured database is SQLite "
            f"({database.describe()}). Grafana's bundled PostgreSQL data source reads the "
            "hub's views there (docs/grafana.md; copy-data moves a hub to PostgreSQL).",
            file=err(),
        )
        return 2
    problem = name_problem(args.name)
    if problem is not None:
        print(f"edge-hub: {problem}", file=err())
        return 2
    password = _read_password()
    if password is None:
        return 2
    with contextlib.closing(open_migrated(settings)) as storage:
        assert isinstance(storage, PostgresStorage)
        try:
            role = storage.grafana_role(args.name, password)
        except RoleRefused as exc:
            print(f"edge-hub: {exc}; choose another --name", file=err())
            return 2
    done = "created" if role.created else "exists: password changed"
    print(
        f"role {args.name!r} {done}; it may log in and read {', '.join(VIEWS)}, nothing else",
        file=err(),
    )
    if role.may_create_tables:
        print(
            f"edge-hub: warning: {args.name!r} may still create tables in schema public, as "
            "every role may on PostgreSQL 14 and older; the schema's owner can end that with "
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            file=err(),
        )
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """``edge-hub grafana-role`` under the main parser's subcommands."""
    p = sub.add_parser(
        "grafana-role",
        parents=[common],
        help="make (or set the password of) the PostgreSQL role Grafana reads as",
        description="Create the PostgreSQL role NAME that can log in and read only the views "
        f"{', '.join(VIEWS)} (nothing of the hub's tables), or set its password when it "
        "exists. The password is read from stdin (one line). PostgreSQL only: on SQLite it "
        "exits 2. See docs/grafana.md.",
    )
    p.add_argument("--name", required=True, metavar="NAME", help="the role, e.g. edge_grafana")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the role's password from stdin (nothing in argv or the shell history)",
    )
    p.set_defaults(func=cmd_grafana_role)

"""``edge-hub user ...``: people's accounts for the console (hub.user_admin, the same checks
and change log rows as the API's /api/v1/users).

A new account, or a reset, gets a one-time setup link valid 24 h, printed once on stdout
alone; the hub keeps only its SHA-256. ``--password-stdin`` sets the password from stdin
instead (for scripts; nothing in argv or the shell history). Lists go to stdout as a table
or JSON; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import Callable
from typing import Any

from hub import user_admin
from hub.cli.streams import err, open_migrated, out
from hub.cli.tables import print_rows, when
from hub.config import HubSettings
from hub.storage import Storage
from hub.storage.changelog import Actor
from hub.user_admin import ROLES, UserProblem


def cli_actor() -> Actor:
    """Who acts from the command line: the hub's own admin tool, run by whoever has the
    configuration and the database at hand (their login, when the system knows it)."""
    try:
        login: str | None = getpass.getuser()
    except (KeyError, OSError):
        login = None
    return Actor(None, "admin", "system", "cli", login)


def _factories(given: list[str] | None) -> list[str]:
    # Typed on a command line: spaces around a name are the shell's, not the factory's.
    return [f.strip() for f in given or []]


def _refused(exc: UserProblem) -> int:
    hint = " (see `edge-hub user list`)" if exc.kind == "not_found" else ""
    print(f"edge-hub: {exc.message}{hint}", file=err())
    return 1 if exc.kind == "conflict" else 2


def _run(settings: HubSettings, act: Callable[[Storage], object]) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        try:
            act(storage)
        except UserProblem as exc:
            return _refused(exc)
    return 0


def cmd_user_add(settings: HubSettings, args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        # One line; its line ending is not part of the password.
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    links: list[user_admin.SetupLink] = []

    def act(storage: Storage) -> None:
        _, link = user_admin.create(
            storage,
            cli_actor(),
            name=args.name,
            role=args.role,
            display=args.display or "",
            factories=_factories(args.factory),
            password=password,
            public_base=settings.public_base(),
            min_length=settings.console.password_min_length,
        )
        links.extend([link] if link else [])

    code = _run(settings, act)
    if code == 0 and links:
        print(links[0].url, file=out())
        print(f"the link sets {args.name!r}'s password; valid 24 h, shown once", file=err())
    return code


def cmd_user_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        users = storage.users.list()
    rows = [_row(u, args.json) for u in users]
    columns = ["name", "display", "role", "factories", "state", "created"]
    print_rows(rows, columns, args.json)
    return 0


def _row(user: dict[str, Any], as_json: bool) -> dict[str, Any]:
    state = (
        "disabled"
        if user["disabled"]
        else "locked"
        if user_admin.is_locked(user)
        else "active"
        if user["has_password"]
        else "no password"
    )
    return {
        "name": user["name"],
        "display": user["display"] if as_json else (user["display"] or "-"),
        "role": user["role"],
        "factories": user["factories"] if as_json else (",".join(user["factories"]) or "all"),
        "state": state,
        "created": when(user["created_at"]),
    }


def _change(settings: HubSettings, args: argparse.Namespace, **fields: Any) -> int:
    return _run(
        settings, lambda storage: user_admin.change(storage, cli_actor(), args.name, **fields)
    )


def cmd_user_disable(settings: HubSettings, args: argparse.Namespace) -> int:
    code = _change(settings, args, disabled=True)
    if code == 0:
        print(f"user {args.name!r} disabled: they cannot sign in", file=err())
    return code


def cmd_user_enable(settings: HubSettings, args: argparse.Namespace) -> int:
    code = _change(settings, args, disabled=False)
    if code == 0:
        print(f"user {args.name!r} enabled", file=err())
    return code


def cmd_user_set_role(settings: HubSettings, args: argparse.Namespace) -> int:
    factories = _factories(args.factory)
    code = _change(settings, args, role=args.role, factories=factories)
    if code == 0:
        scope = ", ".join(factories) or "all factories"
        print(f"user {args.name!r} is now {args.role} ({scope})", file=err())
    return code


def cmd_user_unlock(settings: HubSettings, args: argparse.Namespace) -> int:
    code = _run(settings, lambda storage: user_admin.unlock(storage, cli_actor(), args.name))
    if code == 0:
        print(f"user {args.name!r} unlocked", file=err())
    return code


def cmd_user_reset_password(settings: HubSettings, args: argparse.Namespace) -> int:
    links: list[user_admin.SetupLink] = []

    def act(storage: Storage) -> None:
        links.append(
            user_admin.reset_password(storage, cli_actor(), args.name, settings.public_base())
        )

    code = _run(settings, act)
    if code == 0:
        print(links[0].url, file=out())
        print(
            f"{args.name!r}'s old password no longer works; the link sets a new one "
            "(valid 24 h, shown once)",
            file=err(),
        )
    return code


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``edge-hub user ...`` under the main parser's subcommands."""
    user = sub.add_parser("user", parents=[common], help="manage people's console accounts")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    def action(name: str, func: Any, help_text: str, description: str | None = None) -> Any:
        p = actions.add_parser(
            name, parents=[common], help=help_text, description=description or help_text
        )
        p.set_defaults(func=func)
        if name != "list":
            p.add_argument("name", metavar="NAME", help="the user name (any case)")
        return p

    def scope(p: Any) -> None:
        p.add_argument("--role", required=True, choices=ROLES, help="read, operator or admin")
        p.add_argument(
            "--factory",
            action="append",
            metavar="NAME",
            help="limit them to this factory (repeat for several; none: every factory)",
        )

    p = action(
        "add",
        cmd_user_add,
        "add a person and print their one-time setup link",
        "Add a person's account. Prints a link (valid 24 h, shown once) where they choose "
        "their password, or with --password-stdin takes the password from stdin. Names are "
        "compared ignoring case: Anna and anna are one account.",
    )
    scope(p)
    p.add_argument("--display", metavar="FULL_NAME", help='the name shown, e.g. "Anna Berg"')
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = action("list", cmd_user_list, "list people: name, display, role, factories, state")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    action("disable", cmd_user_disable, "disable an account: it can no longer sign in")
    action("enable", cmd_user_enable, "enable a disabled account again")
    action("unlock", cmd_user_unlock, "unlock an account locked by failed sign-ins")
    action(
        "reset-password",
        cmd_user_reset_password,
        "end a person's password and print a new setup link (valid 24 h, shown once)",
    )
    p = action(
        "set-role",
        cmd_user_set_role,
        "change a person's role and factories",
        "Set the role and the factories (none given: every factory) of an account.",
    )
    scope(p)

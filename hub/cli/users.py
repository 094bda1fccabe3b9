"""``edge-hub user ...``: people's accounts for the console (hub.storage.users).

A new account, or a reset, gets a one-time setup link valid 24 h, printed once on stdout
alone; the hub keeps only its SHA-256. ``--password-stdin`` sets the password from stdin
instead (for scripts; nothing in argv or the shell history). Lists go to stdout as a table
or JSON; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from typing import Any

from hub.auth import hash_token
from hub.cli.streams import err, open_migrated, out
from hub.cli.tables import print_rows, when
from hub.config import HubSettings
from hub.passwords import hash_password, password_problem
from hub.storage import Conflict
from hub.storage.audit import Actor, AuditEntry
from hub.storage.users import UnknownFactory
from hub.user_names import display_problem, name_key, name_problem
from shared.text import nfc
from shared.timeutil import now

SETUP_VALID_S = 24 * 3600.0
ROLES = ("read", "operator", "admin")


def _setup_link(settings: HubSettings) -> tuple[str, tuple[str, float]]:
    """A fresh setup link, and what storage keeps of it (its hash, when it expires)."""
    token = secrets.token_urlsafe(32)
    return f"{settings.public_base()}/setup?token={token}", (
        hash_token(token),
        now() + SETUP_VALID_S,
    )


def _read_password(settings: HubSettings) -> str | None:
    """The password on stdin (one line; its line ending is not part of it), or None after
    saying why it cannot be used."""
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    problem = password_problem(password, settings.console.password_min_length)
    if problem is not None:
        print(f"edge-hub: {problem}", file=err())
        return None
    return password


def _factories(given: list[str] | None) -> list[str]:
    return [nfc(f.strip()) for f in given or []]


def _usage_problem(args: argparse.Namespace) -> str | None:
    problem = name_problem(args.name)
    if problem is None and getattr(args, "display", None) is not None:
        problem = display_problem(args.display)
    return problem


def cmd_user_add(settings: HubSettings, args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem is not None:
        print(f"edge-hub: {problem}", file=err())
        return 2
    password_hash = None
    link, setup = None, None
    if args.password_stdin:
        password = _read_password(settings)
        if password is None:
            return 2
        password_hash = hash_password(password)
    else:
        link, setup = _setup_link(settings)
    with contextlib.closing(open_migrated(settings)) as storage:
        try:
            storage.users.add(
                nfc(args.name),
                name_key(args.name),
                role=args.role,
                display=args.display or "",
                factories=_factories(args.factory),
                password_hash=password_hash,
                setup=setup,
            )
        except Conflict as exc:
            print(f"edge-hub: {exc}", file=err())
            return 1
        except UnknownFactory as exc:
            print(f"edge-hub: {exc} (see GET /api/v1/factories)", file=err())
            return 2
    if link is not None:
        print(link, file=out())
        print(f"the link sets {args.name!r}'s password; valid 24 h, shown once", file=err())
    return 0


def cmd_user_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        users = storage.users.list()
    rows = [_row(u, args.json) for u in users]
    columns = ["name", "display", "role", "factories", "state", "created"]
    print_rows(rows, columns, args.json)
    return 0


def _row(user: dict[str, Any], as_json: bool) -> dict[str, Any]:
    locked = user["locked_until"] is not None and user["locked_until"] > now()
    state = (
        "disabled"
        if user["disabled"]
        else "locked"
        if locked
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
    problem = name_problem(args.name)
    if problem is not None:
        print(f"edge-hub: {problem}", file=err())
        return 2
    with contextlib.closing(open_migrated(settings)) as storage:
        try:
            found = storage.users.update(name_key(args.name), **fields)
        except UnknownFactory as exc:
            print(f"edge-hub: {exc} (see GET /api/v1/factories)", file=err())
            return 2
    if found is None:
        print(f"edge-hub: no user {args.name!r} (see `edge-hub user list`)", file=err())
        return 2
    return 0


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
    code = _change(settings, args, role=args.role, factories=_factories(args.factory))
    if code == 0:
        scope = ", ".join(_factories(args.factory)) or "all factories"
        print(f"user {args.name!r} is now {args.role} ({scope})", file=err())
    return code


def cmd_user_unlock(settings: HubSettings, args: argparse.Namespace) -> int:
    if _usage_problem(args) is not None:
        return _change(settings, args)
    with contextlib.closing(open_migrated(settings)) as storage:
        found = storage.users.unlock(name_key(args.name))
        user = storage.users.get(name_key(args.name)) if found else None
        if user is not None:
            # Done on the hub's host by whoever may run edge-hub there: no token, an admin.
            storage.audit.record_audit(
                AuditEntry(Actor(None, "admin"), "user.unlock", "user", user["name"], None)
            )
    if not found:
        print(f"edge-hub: no user {args.name!r} (see `edge-hub user list`)", file=err())
        return 2
    print(f"user {args.name!r} unlocked", file=err())
    return 0


def cmd_user_reset_password(settings: HubSettings, args: argparse.Namespace) -> int:
    if _usage_problem(args) is not None:
        return _change(settings, args)
    link, (link_hash, expires_at) = _setup_link(settings)
    with contextlib.closing(open_migrated(settings)) as storage:
        found = storage.users.reset_password(name_key(args.name), link_hash, expires_at)
    if not found:
        print(f"edge-hub: no user {args.name!r} (see `edge-hub user list`)", file=err())
        return 2
    print(link, file=out())
    print(
        f"{args.name!r}'s old password no longer works; the link sets a new one "
        "(valid 24 h, shown once)",
        file=err(),
    )
    return 0


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

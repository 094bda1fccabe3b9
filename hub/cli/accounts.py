"""``edge-hub gateway ...`` and ``edge-hub token ...``: who may talk to the hub.

A token is printed once, on stdout alone (scripts capture it); the hub keeps its SHA-256.
Lists go to stdout as a table or JSON; everything else to stderr.
"""

from __future__ import annotations

import argparse
import contextlib

from hub.auth import generate_token, hash_token
from hub.cli.streams import err, open_migrated, out
from hub.cli.tables import print_rows, when
from hub.config import HubSettings
from hub.storage import Conflict, UnknownFactory
from hub.user_names import token_name_problem
from shared.ids import gateway_id_problem
from shared.text import nfc


def cmd_gateway_add(settings: HubSettings, args: argparse.Namespace) -> int:
    ids: list[str] = args.id
    for gateway_id in ids:
        problem = gateway_id_problem(gateway_id)
        if problem is not None:
            print(f"edge-hub: gateway id {gateway_id!r} {problem}", file=err())
            return 2
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        print(f"edge-hub: gateway id given twice: {', '.join(twice)}", file=err())
        return 2
    factory = args.factory.strip()
    if not factory or len(factory) > 128:
        print("edge-hub: --factory must be 1-128 characters", file=err())
        return 2
    hint = "" if args.rotate else " (use --rotate to issue a new token and revoke the old)"
    with contextlib.closing(open_migrated(settings)) as storage:
        # Refuse before registering any: a half-done list would leave tokens nobody saw.
        if not args.rotate:
            taken = [i for i in ids if storage.get_gateway(i) is not None]
            if taken:
                listed = ", ".join(taken)
                print(f"edge-hub: gateway already exists: {listed}{hint}", file=err())
                return 1
        for gateway_id in ids:
            token = generate_token("gateway")
            try:
                storage.add_gateway(gateway_id, factory, hash_token(token), rotate=args.rotate)
            except Conflict as exc:
                print(f"edge-hub: {exc}{hint}", file=err())
                return 1
            # Each token is printed as soon as it exists: it is shown this once only.
            print(token if len(ids) == 1 else f"{gateway_id} {token}", file=out(), flush=True)
    return 0


def cmd_gateway_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        gateways = storage.list_gateways()
    rows = [
        {
            "id": g["name"],
            "factory": g["factory"],
            "created": when(g["created_at"]),
            "last_seen": when(g["last_seen"]),
            "backlog": g["backlog"],
            "state": "revoked" if g["revoked"] else "active",
        }
        for g in gateways
    ]
    print_rows(rows, ["id", "factory", "created", "last_seen", "backlog", "state"], args.json)
    return 0


def cmd_gateway_revoke(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        found = storage.revoke_gateway(args.id)
    if not found:
        print(f"edge-hub: no gateway {args.id!r} (see `edge-hub gateway list`)", file=err())
        return 2
    print(
        f"gateway {args.id!r} revoked: its tokens get 401 from now on; its data stays "
        f"(`edge-hub gateway add {args.id} --factory NAME --rotate` re-enables it)",
        file=err(),
    )
    return 0


def cmd_token_add(settings: HubSettings, args: argparse.Namespace) -> int:
    factories = [nfc(f.strip()) for f in args.factory or []]
    name = None if args.name is None else nfc(args.name)
    problem = None if name is None else token_name_problem(name)
    if problem is not None:
        print(f"edge-hub: {problem}", file=err())
        return 2
    storage = open_migrated(settings)
    token = generate_token(args.role)
    try:
        storage.add_token(args.role, hash_token(token), factories, name=name)
    except UnknownFactory as exc:
        print(f"edge-hub: {exc} (see GET /api/v1/factories); no token made", file=err())
        return 2
    finally:
        storage.close()
    print(token, file=out())
    return 0


def cmd_token_list(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        tokens = storage.list_tokens()
    rows = [
        {
            "id": t["id"],
            "name": t["name"] if args.json else (t["name"] or "-"),
            "role": t["role"],
            "gateway": t["gateway"] or "-",
            # JSON keeps the list ([]: every factory); the table says it in words.
            "factories": t["factories"] if args.json else ", ".join(t["factories"]) or "all",
            "created": when(t["created_at"]),
            "state": "revoked" if t["revoked"] else "active",
        }
        for t in tokens
    ]
    columns = ["id", "name", "role", "gateway", "factories", "created", "state"]
    print_rows(rows, columns, args.json)
    return 0


def cmd_token_revoke(settings: HubSettings, args: argparse.Namespace) -> int:
    with contextlib.closing(open_migrated(settings)) as storage:
        found = storage.revoke_token(args.id)
    if not found:
        print(f"edge-hub: no token with id {args.id} (see `edge-hub token list`)", file=err())
        return 2
    print(f"token {args.id} revoked", file=err())
    return 0

"""People's accounts, for admins who see every factory: ``GET``/``POST /api/v1/users``,
``GET``/``PATCH /api/v1/users/{name}``.

The checks, the setup link and the change log rows are hub.user_admin's, shared with
``edge-hub user``. A name in the path is matched as accounts are (any case, NFC). The
password hash, the setup link's hash and the failure count never leave the hub; a new
account without a password answers its one-time setup link, once.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub import user_admin
from hub.api import readcost
from hub.api import users_spec as _spec  # noqa: F401  (describes these routes)
from hub.api.bodies import decode, invalid, set_fields
from hub.api.http import API, Ctx, Raw, Route, Services, charged, created
from hub.api.pagination import paged, parse_page
from hub.api.scope import UNSCOPED
from hub.auth import Principal, Role
from hub.errors import ApiError
from hub.user_admin import UserProblem
from shared.timeutil import now, to_rfc3339

_UNSET: Any = msgspec.UNSET


class UserBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str
    display: str = ""
    factories: list[str] = []
    # None: the answer carries a one-time setup link where the person chooses it.
    password: str | None = None


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    role: str | msgspec.UnsetType = _UNSET
    display: str | msgspec.UnsetType = _UNSET
    factories: list[str] | msgspec.UnsetType = _UNSET
    disabled: bool | msgspec.UnsetType = _UNSET


def _time(ts: float | None) -> str | None:
    return None if ts is None else to_rfc3339(ts)


def user_view(user: dict[str, Any], at: float | None = None) -> dict[str, Any]:
    """An account as the API shows it: never a hash, never the failure count."""
    return {
        "name": user["name"],
        "display": user["display"],
        "role": user["role"],
        "factories": user["factories"],
        "disabled": user["disabled"],
        "locked": user_admin.is_locked(user, at),
        "has_password": user["has_password"],
        "created_at": _time(user["created_at"]),
        "password_changed_at": _time(user["password_changed_at"]),
    }


def refused(exc: UserProblem) -> ApiError:
    details = [{"field": field, "message": message} for field, message in exc.problems]
    if exc.kind == "not_found":
        return ApiError(404, "not_found", exc.message)
    if exc.kind == "conflict":
        return ApiError(409, "conflict", exc.message, details)
    return invalid(details, "user")


def routes(hub: Services) -> list[Route]:
    storage = hub.storage
    settings = hub.settings

    def who(ctx: Ctx) -> Principal:
        assert ctx.principal is not None  # every route here authenticates
        return ctx.principal

    def name_in(ctx: Ctx) -> str:
        return ctx.path("name") or ""

    def h_users(ctx: Ctx) -> Raw:
        """People's accounts by name: role, factories, display name, disabled, locked."""
        page = parse_page(ctx.params)
        users = storage.users.list()
        at = now()
        rows = [user_view(u, at) for u in users[page.offset : page.offset + page.limit]]
        return paged(ctx, rows, page, len(users))

    def h_create_user(ctx: Ctx) -> Raw:
        """Add a person (201). Without a password the answer carries a one-time setup link
        (valid 24 h) where they choose it; 409 when the name is taken in any case."""
        body = decode(ctx.body, UserBody, "user")
        try:
            user, link = user_admin.create(
                storage,
                who(ctx),
                name=body.name,
                role=body.role,
                display=body.display,
                factories=body.factories,
                password=body.password,
                public_base=settings.public_base(),
                min_length=settings.console.password_min_length,
            )
        except UserProblem as exc:
            raise refused(exc) from None
        view = user_view(user)
        if link is not None:
            view["setup_link"] = link.url
            view["setup_link_expires_at"] = _time(link.expires_at)
        return created(ctx, view)

    def h_user(ctx: Ctx) -> Any:
        """One person's account, by name (any case)."""
        try:
            return user_view(user_admin.get(storage, name_in(ctx))), {}
        except UserProblem as exc:
            raise refused(exc) from None

    def h_update_user(ctx: Ctx) -> Any:
        """Change a person's role, factories (empty: every factory), display name, or
        disable and enable them."""
        fields = set_fields(decode(ctx.body, UserPatch, "user"))
        if not fields:
            raise invalid([{"field": "body", "message": "name at least one field to change"}])
        try:
            user = user_admin.change(storage, who(ctx), name_in(ctx), **fields)
        except UserProblem as exc:
            raise refused(exc) from None
        return user_view(user), {}

    admin: tuple[Role, ...] = ("admin",)
    # People's accounts span factories (an account may be given any of them): only an admin
    # who sees every factory manages them; one limited to some gets 403.
    return [
        Route("GET", f"{API}/users", admin, h_users, charged(readcost.page), UNSCOPED),
        Route("POST", f"{API}/users", admin, h_create_user, scope=UNSCOPED),
        Route("GET", f"{API}/users/:name", admin, h_user, scope=UNSCOPED),
        Route("PATCH", f"{API}/users/:name", admin, h_update_user, scope=UNSCOPED),
    ]

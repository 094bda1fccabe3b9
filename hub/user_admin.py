"""What an admin does to people's accounts, one way for the API (hub.api.users) and the
command line (hub.cli.users): every field checked by the same rules, the one-time setup
link, and the change log row of each change (hub.storage.users writes it with the change).

A problem is a :class:`UserProblem` naming the field and its kind: ``invalid`` (the API's
422, the command line's exit 2), ``conflict`` (409, exit 1: the name is taken) or
``not_found`` (404, exit 2: no such user).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from hub.auth import hash_token
from hub.passwords import hash_password, password_problem
from hub.storage import Conflict, Storage
from hub.storage.changelog import Who
from hub.storage.users import UnknownFactory
from hub.user_names import display_problem, name_key, name_problem
from shared.sensor_key import segment_problem
from shared.text import nfc
from shared.timeutil import now

SETUP_VALID_S = 24 * 3600.0
ROLES = ("read", "operator", "admin")
# More factories than a plant has; a bound on what one request makes the hub look up.
MAX_FACTORIES = 1000

ProblemKind = Literal["invalid", "conflict", "not_found"]
T = TypeVar("T")


class UserProblem(Exception):
    """What is wrong, field by field: every bad field of a request at once."""

    def __init__(self, kind: ProblemKind, field: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.problems = [(field, message)]

    @property
    def message(self) -> str:
        return "; ".join(message for _, message in self.problems)


class _Checks:
    """Runs each field's check and raises once, naming every bad field."""

    def __init__(self) -> None:
        self.found: UserProblem | None = None

    def __call__(self, check: Callable[[T], T], value: T) -> T:
        try:
            return check(value)
        except UserProblem as exc:
            if self.found is None:
                self.found = exc
            else:
                self.found.problems += exc.problems
            return value

    def done(self) -> None:
        if self.found is not None:
            raise self.found


@dataclass(frozen=True, slots=True)
class SetupLink:
    """A one-time link where a person chooses their password; shown once, only its hash
    is kept."""

    url: str
    expires_at: float
    token_hash: str


def setup_link(public_base: str) -> SetupLink:
    token = secrets.token_urlsafe(32)
    return SetupLink(f"{public_base}/setup?token={token}", now() + SETUP_VALID_S, hash_token(token))


def _check(field: str, problem: str | None) -> None:
    if problem is not None:
        raise UserProblem("invalid", field, problem)


def check_name(name: str) -> str:
    """``name`` as kept (NFC); UserProblem when it cannot be a user name."""
    _check("name", name_problem(name))
    return nfc(name)


def check_display(display: str) -> str:
    _check("display", display_problem(display))
    return nfc(display)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserProblem(
            "invalid", "role", f"role must be one of {', '.join(ROLES)}, got {role[:40]!r}"
        )
    return role


def check_factories(names: Sequence[str]) -> list[str]:
    """Factory names as kept (NFC, in the order given, each once); whether each exists is
    storage's to say (in the same transaction as the change)."""
    if len(names) > MAX_FACTORIES:
        raise UserProblem("invalid", "factories", f"at most {MAX_FACTORIES} factories")
    kept: list[str] = []
    for raw in names:
        name = nfc(raw)
        _check("factories", segment_problem("a factory name", name))
        if name not in kept:
            kept.append(name)
    return kept


def check_password(password: str, min_length: int) -> str:
    _check("password", password_problem(password, min_length))
    return password


def _unknown_factory(exc: UnknownFactory) -> UserProblem:
    return UserProblem("invalid", "factories", f"{exc} (see GET /api/v1/factories)")


def create(
    storage: Storage,
    by: Who,
    *,
    name: str,
    role: str,
    display: str = "",
    factories: Sequence[str] = (),
    password: str | None = None,
    public_base: str,
    min_length: int,
) -> tuple[dict[str, Any], SetupLink | None]:
    """A new account, and its setup link when no password was given. Every field is checked
    before anything is stored or hashed."""
    check = _Checks()
    kept = check(check_name, name)
    role = check(check_role, role)
    display = check(check_display, display)
    scope = check(check_factories, list(factories))
    if password is not None:
        check(lambda p: check_password(p, min_length), password)
    check.done()
    link = None
    if password is not None:
        password_hash: str | None = hash_password(password)
    else:
        password_hash, link = None, setup_link(public_base)
    try:
        user = storage.users.add(
            kept,
            name_key(kept),
            role=role,
            display=display,
            factories=scope,
            password_hash=password_hash,
            setup=None if link is None else (link.token_hash, link.expires_at),
            by=by,
        )
    except Conflict as exc:
        raise UserProblem("conflict", "name", str(exc)) from None
    except UnknownFactory as exc:
        raise _unknown_factory(exc) from None
    return user, link


def _key(name: str) -> str:
    if name_problem(name) is not None:
        # No account can have such a name: it is not there.
        raise UserProblem("not_found", "name", f"no user {name[:80]!r}")
    return name_key(name)


def change(
    storage: Storage,
    by: Who,
    name: str,
    *,
    role: str | None = None,
    display: str | None = None,
    disabled: bool | None = None,
    factories: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Change the fields given (None: left as they are); the account as it is now."""
    key = _key(name)
    check = _Checks()
    fields: dict[str, Any] = {"disabled": disabled}
    if role is not None:
        fields["role"] = check(check_role, role)
    if display is not None:
        fields["display"] = check(check_display, display)
    if factories is not None:
        fields["factories"] = check(check_factories, list(factories))
    check.done()
    try:
        user = storage.users.update(key, by=by, **fields)
    except UnknownFactory as exc:
        raise _unknown_factory(exc) from None
    if user is None:
        raise UserProblem("not_found", "name", f"no user {name!r}")
    return user


def get(storage: Storage, name: str) -> dict[str, Any]:
    user = storage.users.get(_key(name))
    if user is None:
        raise UserProblem("not_found", "name", f"no user {name!r}")
    return user


def unlock(storage: Storage, by: Who, name: str) -> None:
    if not storage.users.unlock(_key(name), by=by):
        raise UserProblem("not_found", "name", f"no user {name!r}")


def reset_password(storage: Storage, by: Who, name: str, public_base: str) -> SetupLink:
    """End the account's password (and its sessions); the link that sets the next one."""
    key = _key(name)
    link = setup_link(public_base)
    if not storage.users.reset_password(key, link.token_hash, link.expires_at, by=by):
        raise UserProblem("not_found", "name", f"no user {name!r}")
    return link


def is_locked(user: dict[str, Any], at: float | None = None) -> bool:
    until = user["locked_until"]
    return until is not None and until > (now() if at is None else at)

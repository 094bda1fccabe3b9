"""Console sessions: a person's (after their password, hub.web.signin, or another way of
proving who they are) or a token's; the session behind a request.

A person's session is a row naming their account; every request reads the account again,
so a disabled account stops at once, and a change of password, role or factories deletes
its sessions (hub.storage.users). It ends ``session_lifetime_s`` after sign-in, or
``session_idle_s`` after its last use, whichever comes first.

A token pasted into the sign-in form (where ``token_sign_in`` allows it) is checked like a
Bearer token, then forgotten.

Either way the browser holds only a random session id in an ``HttpOnly`` (no script reads
it), ``SameSite=Strict`` (no other site's page sends it) cookie, and the database holds
sha256 of that id beside the token's hash or the person's id (hub.storage.access). Every
request looks the session up again, so an expired session, a revoked token or a disabled
account stops at once on every hub process.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from hub.auth import READ_ROLES, Principal, Role, authenticate, hash_token, require
from hub.console_settings import ConsoleSettings
from hub.errors import unauthorized
from hub.storage import Storage
from hub.storage.audit import Actor, AuditEntry
from hub.storage.model import SessionRow
from hub.storage.users import SessionUser
from hub.web.throttle import source_address
from shared.timeutil import now

COOKIE = "edge_session"
# The sign-in and setup forms' CSRF token (hub.web.csrf.check_form): no session exists yet.
FORM_COOKIE = "edge_signin"
# A session id is 32 random bytes; anything longer in the cookie is not ours.
MAX_COOKIE = 64
# A person's session records its last use at most this often (and at most every tenth of
# its idle timeout): polling pages would otherwise write a row every few seconds.
TOUCH_S = 60.0


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    principal: Principal
    csrf: str
    expires_at: float


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_value(header: str | None, name: str = COOKIE) -> str | None:
    """Our session id (or the cookie ``name``) from a Cookie header, else None (also for a
    malformed header)."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    if morsel is None or not morsel.value or len(morsel.value) > MAX_COOKIE:
        return None
    return morsel.value


def sign_in(storage: Storage, token: str, settings: ConsoleSettings) -> tuple[str, Session]:
    """A new session for a person's token: (the cookie's value, the session).

    ApiError 401 for an unknown or revoked token, 403 for a gateway's (a gateway has no
    business in the console)."""
    principal = require(authenticate(storage, f"Bearer {token.strip()}"), READ_ROLES)
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = now() + settings.session_lifetime_s
    id_hash = _hash(value)
    storage.create_session(
        id_hash, hash_token(token.strip()), csrf, expires_at, settings.max_sessions_per_token
    )
    return value, Session(id_hash, principal, csrf, expires_at)


def _person(user: SessionUser) -> Principal:
    role: Role = user.role  # type: ignore[assignment]  # the users table's CHECK: one of READ_ROLES
    return Principal(
        token_id=0,
        role=role,
        user_id=user.id,
        name=user.name,
        display=user.display or None,
        factories=user.factories,
    )


def sign_in_user(
    storage: Storage,
    user_id: int,
    settings: ConsoleSettings,
    request: Any,
    details: Mapping[str, Any] | None = None,
) -> tuple[str, Session]:
    """A new session for the person ``user_id`` whose identity was just proven (password,
    single sign-on): (the cookie's value, the session). Records the sign-in in the audit
    log with the request's source address and ``details`` (how they signed in, when not
    with a password). ApiError 401 when the account is disabled or gone."""
    user = storage.users.session_user(user_id)
    if user is None:
        raise unauthorized()
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = now() + settings.session_lifetime_s
    id_hash = _hash(value)
    storage.access.create_user_session(
        id_hash,
        user.id,
        csrf,
        (expires_at, settings.session_idle_s),
        settings.max_sessions_per_token,
    )
    storage.audit.record_audit(
        AuditEntry(
            Actor(None, user.role, "user", user.name, user.display),
            "user.sign_in",
            "user",
            user.name,
            {"address": source_address(request, settings), **(details or {})},
        )
    )
    return value, Session(id_hash, _person(user), csrf, expires_at)


def current(storage: Storage, request: Any, at: float | None = None) -> Session | None:
    """The live session of this request's cookie at ``at`` (default now), or None (none,
    unknown, past its lifetime or idle timeout, its token revoked or its person disabled
    since sign-in). A person's session counts this request as a use."""
    value = cookie_value(request.headers.get("cookie"))
    if value is None:
        return None
    at = now() if at is None else at
    id_hash = _hash(value)
    row: SessionRow | None = storage.access.session_by_hash(id_hash, at)
    if row is None:
        return None
    if row.user_id is not None:
        return _person_session(storage, id_hash, row, at)
    record = storage.token_by_hash(row.token_hash)
    if record is None or record.revoked or record.role not in READ_ROLES:
        return None
    # The token's factory scope comes with it: a limited token signed in to the console
    # sees no more there than through the API.
    principal = Principal(token_id=record.id, role=record.role, factories=record.factories)
    return Session(id_hash, principal, row.csrf, row.expires_at)


def _person_session(storage: Storage, id_hash: str, row: SessionRow, at: float) -> Session | None:
    user = storage.users.session_user(row.user_id or 0)
    if user is None:
        return None
    idle_s, seen = row.idle_s, row.last_seen_at
    if idle_s is not None and seen is not None and at - seen >= min(TOUCH_S, idle_s / 10):
        storage.access.touch_session(id_hash, at)
    return Session(id_hash, _person(user), row.csrf, row.expires_at)


def sign_out(storage: Storage, session: Session) -> None:
    storage.delete_session(session.id_hash)


def _secure(request: Any, settings: ConsoleSettings) -> bool:
    if settings.secure_cookie != "auto":
        return settings.secure_cookie == "always"
    return str(request.headers.get("x-forwarded-proto") or "").lower() == "https"


def set_cookie(request: Any, value: str, settings: ConsoleSettings) -> str:
    """The Set-Cookie header of a new session: no Max-Age, so it lives as long as the
    browser session at most; the server's expiry decides before that."""
    secure = "; Secure" if _secure(request, settings) else ""
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"


def clear_cookie(request: Any, settings: ConsoleSettings) -> str:
    secure = "; Secure" if _secure(request, settings) else ""
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"


def form_cookie(request: Any, settings: ConsoleSettings) -> tuple[str, str]:
    """The token for a sign-in or setup form: (the token, its Set-Cookie header). The one
    the browser already holds is kept (so one browser's answers differ in nothing but
    their words), else a new one; the cookie lives as long as the browser session."""
    value = cookie_value(request.headers.get("cookie"), FORM_COOKIE) or secrets.token_urlsafe(32)
    secure = "; Secure" if _secure(request, settings) else ""
    return value, f"{FORM_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"

"""Sign-in by token, exchanged for a session cookie; the session behind a request.

The token a person pastes into the sign-in form is checked like a Bearer token, then
forgotten: the browser holds only a random session id in an ``HttpOnly`` (no script reads
it), ``SameSite=Strict`` (no other site's page sends it) cookie, and the database holds
sha256 of that id beside the token's hash (hub.storage.access). Every request looks the
session up again, so an expired session or a revoked token stops at once on every hub
process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from hub.auth import READ_ROLES, Principal, authenticate, hash_token, require
from hub.console_settings import ConsoleSettings
from hub.storage import Storage
from hub.storage.model import SessionRow
from shared.timeutil import now

COOKIE = "edge_session"
# A session id is 32 random bytes; anything longer in the cookie is not ours.
MAX_COOKIE = 64


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    principal: Principal
    csrf: str
    expires_at: float


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_value(header: str | None) -> str | None:
    """Our session id from a Cookie header, else None (also for a malformed header)."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
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


def current(storage: Storage, request: Any) -> Session | None:
    """The live session of this request's cookie, or None (none, unknown, expired, or its
    token revoked since sign-in)."""
    value = cookie_value(request.headers.get("cookie"))
    if value is None:
        return None
    id_hash = _hash(value)
    row: SessionRow | None = storage.session_by_hash(id_hash)
    if row is None:
        return None
    record = storage.token_by_hash(row.token_hash)
    if record is None or record.revoked or record.role not in READ_ROLES:
        return None
    principal = Principal(token_id=record.id, role=record.role)
    return Session(id_hash, principal, row.csrf, row.expires_at)


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

"""Single sign-on: people sign in to the console through the plant's OpenID provider
(``[oidc]`` in hub.toml, hub.oidc_settings), with Authlib's OpenID Connect client over httpx.

``/auth/oidc/login`` starts the authorization code flow with PKCE (S256), a state and a
nonce; ``/auth/oidc/callback`` is where the provider sends the browser back. What the
callback must check is kept in the database (hub.storage.sso), shared by every hub process
and host, under sha256 of a random value in a short-lived cookie. That cookie is
``SameSite=Lax``: the provider's redirect back is a cross-site navigation, which a Strict
cookie would not come with. Nothing of it is in a URL but the ``state`` parameter.

The callback takes the sign-in under way (once: a replay finds nothing), compares the state,
exchanges the code (with the PKCE verifier) and validates the ID token: its signature by
the provider's published keys, issuer, audience (this hub's client_id), expiry and nonce.
The person's groups (``groups_claim``) decide their role and factories through
``[oidc.groups."GROUP"]``; a person in no mapped group is refused, never let in as read. The
account (found by the provider's subject) is made or brought up to date, then a console
session starts as after a password (hub.web.session.sign_in_user). The audit log gets a row
for every sign-in and every refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OpenIDMixin
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.errors import JoseError

from hub.api.http import Ctx, Raw, Route, Services
from hub.console_settings import ConsoleSettings
from hub.errors import ApiError
from hub.oidc_settings import OidcSettings
from hub.storage import Storage
from hub.storage.audit import Actor, AuditEntry
from hub.storage.model import Conflict, UnknownFactory
from hub.storage.sso import Disabled, PendingLogin, Person
from hub.user_names import MAX_DISPLAY, MAX_NAME, display_problem, name_problem
from hub.web import render, session, throttle
from hub.web.responses import html, redirect
from shared.timeutil import now

COOKIE = "edge_oidc"
# A sign-in at the provider may take a person a while (a password, a second factor).
LOGIN_S = 600.0
# The provider's settings are read again after this long (a provider may move endpoints).
METADATA_S = 86400.0
# Clock difference tolerated between the provider and this host, for exp, iat and nbf.
LEEWAY_S = 60
TIMEOUT_S = 10.0
ROLES = ("read", "operator", "admin")


class _Provider(OAuth2Mixin, OpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's OpenID Connect client for one provider, over httpx: discovery, the
    authorization URL (PKCE, nonce), the code exchange, the provider's keys (fetched again
    when a token names a key it has not seen) and the ID token's validation."""

    client_cls = OAuth2Client


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []


def mapped_access(settings: OidcSettings, groups: list[str]) -> tuple[str, list[str]] | None:
    """The role and factories a person in ``groups`` gets, or None when no group of theirs
    is mapped. Several mapped groups: the highest role among them, limited to the factories
    of the groups giving that role (one of them with no factories: every factory). A lower
    role's factories never widen a higher role's reach."""
    mapped = [settings.groups[g] for g in groups if g in settings.groups]
    if not mapped:
        return None
    role = max((m.role for m in mapped), key=ROLES.index)
    top = [m for m in mapped if m.role == role]
    if any(not m.factories for m in top):
        return role, []
    return role, list(dict.fromkeys(f for m in top for f in m.factories))


def _names(claims: Mapping[str, Any]) -> list[str]:
    """Names a new account may take, best first: what the person is called at the provider,
    else the subject itself."""
    found = []
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and name_problem(value) is None:
            found.append(value)
    return found or [f"oidc-{_hash(str(claims.get('sub')))[:16]}"[:MAX_NAME]]


def _display(claims: Mapping[str, Any], claim: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str):
        return ""
    value = value.strip()[:MAX_DISPLAY].strip()
    return value if display_problem(value) is None else ""


class SignInRefused(Exception):
    """A refusal: its status, what the person reads, and the reason the audit log keeps."""

    def __init__(self, status: int, message: str, reason: str, who: str = "") -> None:
        super().__init__(reason)
        self.status, self.message, self.reason, self.who = status, message, reason, who


def routes(hub: Services) -> list[Route]:
    storage: Storage = hub.storage
    console: ConsoleSettings = hub.settings.console
    oidc: OidcSettings | None = hub.settings.oidc
    provider: _Provider | None = None
    lock = threading.Lock()

    def client() -> _Provider:
        nonlocal provider
        assert oidc is not None
        with lock:
            loaded = provider.server_metadata.get("_loaded_at", 0.0) if provider else 0.0
            if provider is None or time.time() - float(loaded) > METADATA_S:
                provider = _Provider(
                    None,
                    client_id=oidc.client_id,
                    client_secret=oidc.client_secret.get_secret_value(),
                    server_metadata_url=f"{oidc.issuer}/.well-known/openid-configuration",
                    client_kwargs={
                        "scope": " ".join(oidc.scopes),
                        "code_challenge_method": "S256",
                        "timeout": TIMEOUT_S,
                    },
                )
            return provider

    def refused(ctx: Ctx, error: SignInRefused, clear: bool = True) -> Raw:
        storage.audit.record_audit(
            AuditEntry(
                Actor(None, "none", "system", "single sign-on"),
                "user.sign_in_failed",
                "user",
                error.who[:MAX_NAME],
                {
                    "address": throttle.source_address(ctx.request, console),
                    "method": "oidc",
                    "reason": error.reason,
                },
            )
        )
        headers = {"Set-Cookie": _clear_cookie(ctx.request)} if clear else {}
        body = render.page("oidc_refused.html", message=error.message)
        return html(error.status, body, headers)

    def not_set_up() -> Raw:
        message = "Single sign-on is not set up on this hub ([oidc] in hub.toml)."
        return html(404, render.page("oidc_refused.html", message=message))

    def _cookie(request: Any, value: str) -> str:
        secure = "; Secure" if _secure(request) else ""
        return (
            f"{COOKIE}={value}; Path=/auth/oidc; Max-Age={int(LOGIN_S)}; HttpOnly; "
            f"SameSite=Lax{secure}"
        )

    def _clear_cookie(request: Any) -> str:
        secure = "; Secure" if _secure(request) else ""
        return f"{COOKIE}=; Path=/auth/oidc; Max-Age=0; HttpOnly; SameSite=Lax{secure}"

    def _secure(request: Any) -> bool:
        if console.secure_cookie != "auto":
            return console.secure_cookie == "always"
        return str(request.headers.get("x-forwarded-proto") or "").lower() == "https"

    def unreachable(ctx: Ctx, exc: Exception) -> Raw:
        return refused(
            ctx,
            SignInRefused(
                502,
                "The sign-in provider did not answer; try again, or sign in with your "
                "user name and password.",
                f"provider unreachable: {type(exc).__name__}",
            ),
        )

    def h_login(ctx: Ctx) -> Raw:
        """Single sign-on: redirect to the OpenID provider's sign-in (authorization code
        flow with PKCE); a short-lived cookie ties the browser to the sign-in under way."""
        if oidc is None:
            return not_set_up()
        try:
            started = client().create_authorization_url(oidc.redirect_url)
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            return unreachable(ctx, exc)
        value = secrets.token_urlsafe(32)
        at = now()
        storage.sso.begin(
            _hash(value),
            PendingLogin(started["state"], started["nonce"], started["code_verifier"]),
            at + LOGIN_S,
            at,
        )
        return redirect(started["url"], {"Set-Cookie": _cookie(ctx.request, value)})

    def h_callback(ctx: Ctx) -> Raw:
        """Single sign-on: where the OpenID provider sends the browser back (``code`` and
        ``state``, or ``error``); on success a console session and a redirect to the fleet."""
        if oidc is None:
            return not_set_up()
        try:
            user_id = finish(ctx, oidc)
        except SignInRefused as error:
            return refused(ctx, error)
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            # No answer, or documents without what a sign-in needs (Authlib's RuntimeError
            # for a missing endpoint or key set): the provider's fault, not the person's.
            return unreachable(ctx, exc)
        try:
            value, _ = session.sign_in_user(
                storage, user_id, console, ctx.request, {"method": "oidc"}
            )
        except ApiError:
            return refused(ctx, SignInRefused(403, "Your account is disabled.", "disabled"))
        # The sign-in cookie is left to expire: its row is spent already.
        return redirect("/", {"Set-Cookie": session.set_cookie(ctx.request, value, console)})

    def finish(ctx: Ctx, oidc: OidcSettings) -> int:
        value = session.cookie_value(ctx.request.headers.get("cookie"), COOKIE)
        pending = storage.sso.take(_hash(value), now()) if value else None
        if pending is None:
            raise SignInRefused(
                400,
                "This sign-in has expired or was started in another browser; sign in again.",
                "no sign-in under way",
            )
        params = ctx.params
        if "error" in params:
            raise SignInRefused(
                401,
                "The sign-in provider did not sign you in.",
                f"provider: {params['error'][:64]}",
            )
        if not hmac.compare_digest(params.get("state", ""), pending.state):
            raise SignInRefused(
                400, "This sign-in answer does not match; sign in again.", "state mismatch"
            )
        code = params.get("code", "")
        if not code:
            raise SignInRefused(400, "The sign-in answer has no code; sign in again.", "no code")
        provider_client = client()
        try:
            token = provider_client.fetch_access_token(
                oidc.redirect_url, code=code, code_verifier=pending.code_verifier
            )
            claims = provider_client.parse_id_token(
                token,
                pending.nonce,
                claims_options={
                    "iss": {"essential": True, "value": oidc.issuer},
                    "aud": {"essential": True, "value": oidc.client_id},
                },
                leeway=LEEWAY_S,
            )
        except (AuthlibBaseError, JoseError) as exc:
            raise SignInRefused(
                401,
                "The sign-in provider's answer was not valid; sign in again.",
                f"ID token: {exc}"[:200],
            ) from None
        if claims is None:
            raise SignInRefused(401, "The provider sent no ID token.", "no ID token")
        return account(dict(claims), oidc)

    def account(claims: dict[str, Any], oidc: OidcSettings) -> int:
        subject = str(claims.get("sub", ""))
        names = _names(claims)
        groups = _groups(claims, oidc.groups_claim)
        access = mapped_access(oidc, groups)
        if access is None:
            # Taken out of every mapped group at the provider: out of the console too.
            storage.sso.refused(oidc.issuer, subject)
            raise SignInRefused(
                403,
                "You are not in any group this hub lets in; ask an admin.",
                f"no mapped group (groups: {', '.join(groups)[:200] or 'none'})",
                names[0],
            )
        person = Person(oidc.issuer, subject, names, _display(claims, oidc.display_claim), *access)
        try:
            return storage.sso.sign_in(person, now()).user_id
        except UnknownFactory as exc:
            raise SignInRefused(
                403,
                f"Your group gives you a factory this hub does not have ({exc}); ask an "
                "admin to correct [oidc.groups] in hub.toml.",
                f"unknown factory: {exc}",
                names[0],
            ) from None
        except Disabled:
            raise SignInRefused(
                403, "Your account is disabled; ask an admin.", "disabled", names[0]
            ) from None
        except Conflict as exc:
            raise SignInRefused(
                409, "No user name is free for you; ask an admin.", str(exc)
            ) from None

    return [
        Route("GET", "/auth/oidc/login", None, h_login),
        Route("GET", "/auth/oidc/callback", None, h_callback),
    ]

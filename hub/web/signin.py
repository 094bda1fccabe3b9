"""Signing in to the console: a person's name and password, a token where ``[console]
token_sign_in`` allows it, and the one-time setup page where a person chooses a password.

A name and password get one answer, the same words and status, whatever was wrong: no such
name, a disabled or locked account, a wrong password. Each takes the same work too: the
password is always verified with argon2, against a dummy hash when there is no account
(hub.passwords), so timing does not tell names apart either. Attempts are counted per source
address and per name before the password is looked at (hub.web.throttle). Wrong passwords
in a row lock the account (``lockout_failures``, ``lockout_s``); ``edge-hub user unlock``
lifts it sooner. The audit log gets a row for each sign-in, failed sign-in and lockout.
"""

from __future__ import annotations

from typing import Any

from hub.api.http import Ctx, Raw, Route, Services
from hub.auth import hash_token
from hub.console_settings import ConsoleSettings
from hub.errors import ApiError
from hub.passwords import hash_password, needs_rehash, password_problem, verify_password
from hub.ratelimit import retry_after_s
from hub.storage import Storage
from hub.storage.audit import Actor, AuditEntry
from hub.user_names import MAX_NAME, name_key, name_problem
from hub.web import csrf, render, session, throttle
from hub.web.responses import form, html, redirect
from shared.text import nfc
from shared.timeutil import now

WRONG = "The user name or password is wrong."
# A setup link's token is secrets.token_urlsafe(32): 43 characters.
MAX_LINK_TOKEN = 64


def _audit_failure(storage: Storage, name: str, address: str, reason: str) -> None:
    # The name as typed (NFC, at most a name's length): an admin reading the log sees
    # what was tried; the reason is for them only, never in the answer. A name no account
    # can have (control characters, NUL, which PostgreSQL's text refuses) is kept escaped.
    shown = nfc(name) if name_problem(name) is None else ascii(nfc(name))[1:-1]
    storage.audit.record_audit(
        AuditEntry(
            Actor(None, "none", "system", "sign-in"),
            "user.sign_in_failed",
            "user",
            shown[:MAX_NAME],
            {"address": address, "reason": reason},
        )
    )


def check_password(
    storage: Storage, settings: ConsoleSettings, name: str, password: str, address: str
) -> int | None:
    """The id of the account ``name`` and ``password`` sign in as, else None (recorded as
    a failure; the account locked when this failure reaches the limit)."""
    at = now()
    creds = storage.users.credentials(name_key(name)) if name_problem(name) is None else None
    # Verified whatever is known of the account: every refusal costs one argon2 verify.
    good = verify_password(creds.password_hash if creds else None, password)
    if creds is None:
        _audit_failure(storage, name, address, "unknown user")
        return None
    locked = creds.locked_until is not None and creds.locked_until > at
    if creds.disabled or locked or not good:
        reason = "disabled" if creds.disabled else "locked" if locked else "wrong password"
        _audit_failure(storage, creds.name, address, reason)
        if not creds.disabled and not locked:
            until = storage.users.sign_in_failed(
                creds.id, at, settings.lockout_failures, settings.lockout_s
            )
            if until is not None:
                storage.audit.record_audit(
                    AuditEntry(
                        Actor(None, "system", "system", "sign-in"),
                        "user.lock",
                        "user",
                        creds.name,
                        {"failures": settings.lockout_failures, "locked_until": until},
                    )
                )
        return None
    storage.users.sign_in_succeeded(creds.id)
    if creds.password_hash is not None and needs_rehash(creds.password_hash):
        # The hub's argon2 parameters changed since this hash was made: store one made
        # with today's (the same password, so the person's sessions live on).
        storage.users.set_password(name_key(name), hash_password(password), changed=False)
    return creds.id


def routes(hub: Services) -> list[Route]:
    storage = hub.storage
    settings: ConsoleSettings = hub.settings.console
    oidc_name = hub.settings.oidc.button_name() if hub.settings.oidc else None

    def login_page(status: int, message: str | None, request: Any, **extra: str) -> Raw:
        token, cookie = session.form_cookie(request, settings)
        body = render.page(
            "login.html",
            message=message,
            csrf_field=csrf.FIELD,
            csrf=token,
            token_sign_in=settings.token_sign_in,
            user_name=extra.get("name", ""),
            oidc_name=oidc_name,
        )
        headers = {"Set-Cookie": cookie}
        if "retry_after" in extra:
            headers["Retry-After"] = extra["retry_after"]
        return html(status, body, headers)

    def throttled(request: Any, wait_s: float, name: str = "") -> Raw:
        wait = retry_after_s(wait_s)
        message = f"Too many failed sign-ins; try again in {wait} s."
        return login_page(429, message, request, retry_after=str(wait), name=name)

    def h_login_form(ctx: Ctx) -> Raw:
        """Sign-in page (redirects to the fleet when already signed in)."""
        if session.current(storage, ctx.request) is not None:
            return redirect("/")
        ended = ctx.params.get("expired") == "1"
        message = "Your session has ended; sign in again." if ended else None
        return login_page(200, message, ctx.request)

    def h_login(ctx: Ctx) -> Raw:
        """Sign in with a name and password (fields ``name``, ``password``), or exchange a
        token (field ``token``, where token_sign_in is on) for a session cookie."""
        csrf.check_origin(ctx.request)
        fields = form(ctx)
        if "token" in fields and "name" not in fields:
            return token_sign_in(ctx, fields["token"].strip())
        csrf.check_form(
            ctx.request,
            session.cookie_value(ctx.request.headers.get("cookie"), session.FORM_COOKIE),
            fields.get(csrf.FIELD),
        )
        name, password = fields.get("name", "").strip(), fields.get("password", "")
        if not name or not password:
            return login_page(400, "Enter your user name and password.", ctx.request, name=name)
        address = throttle.source_address(ctx.request, settings)
        tried = throttle.attempt_name(storage, settings, address, name)
        if tried.wait_s > 0:
            return throttled(ctx.request, tried.wait_s, name)
        user_id = check_password(storage, settings, name, password, address)
        if user_id is None:
            return login_page(401, WRONG, ctx.request, name=name)
        throttle.succeeded(storage, tried)
        try:
            value, _ = session.sign_in_user(storage, user_id, settings, ctx.request)
        except ApiError:
            # Disabled between the check and now: the same answer as any refusal.
            return login_page(401, WRONG, ctx.request, name=name)
        return redirect("/", {"Set-Cookie": session.set_cookie(ctx.request, value, settings)})

    def token_sign_in(ctx: Ctx, token: str) -> Raw:
        if not settings.token_sign_in:
            return login_page(400, "Sign in with your user name and password.", ctx.request)
        if not token:
            message = "Paste a token (edge-hub token add --role read|operator|admin)."
            return login_page(400, message, ctx.request)
        address = throttle.source_address(ctx.request, settings)
        tried = throttle.attempt(storage, settings, address, token)
        if tried.wait_s > 0:
            return throttled(ctx.request, tried.wait_s)
        try:
            value, _ = session.sign_in(storage, token, settings)
        except ApiError as err:
            if err.status == 403:
                return login_page(
                    403, "A gateway's token cannot sign in to the console.", ctx.request
                )
            return login_page(401, "This token is unknown or revoked.", ctx.request)
        throttle.succeeded(storage, tried)
        return redirect("/", {"Set-Cookie": session.set_cookie(ctx.request, value, settings)})

    def setup_page(status: int, request: Any, link: str, user: str, problem: str | None) -> Raw:
        token, cookie = session.form_cookie(request, settings)
        body = render.page(
            "setup.html",
            user=user,
            link=link,
            problem=problem,
            min_length=settings.password_min_length,
            csrf_field=csrf.FIELD,
            csrf=token,
        )
        return html(status, body, {"Set-Cookie": cookie})

    def spent(status: int = 404) -> Raw:
        return html(status, render.page("setup_spent.html"))

    def link_user(link: str) -> str | None:
        if not link or len(link) > MAX_LINK_TOKEN:
            return None
        return storage.users.setup_user(hash_token(link))

    def h_setup_form(ctx: Ctx) -> Raw:
        """A one-time setup link: the page where a person chooses their password."""
        link = ctx.params.get("token", "")
        user = link_user(link)
        if user is None:
            return spent()
        return setup_page(200, ctx.request, link, user, None)

    def h_setup(ctx: Ctx) -> Raw:
        """Set the password of a setup link's account (fields ``token``, ``password``,
        ``confirm``), spend the link and sign the person in."""
        fields = form(ctx)
        csrf.check_form(
            ctx.request,
            session.cookie_value(ctx.request.headers.get("cookie"), session.FORM_COOKIE),
            fields.get(csrf.FIELD),
        )
        link = fields.get("token", "")
        user = link_user(link)
        if user is None:
            return spent()
        password = fields.get("password", "")
        problem = password_problem(password, settings.password_min_length)
        if problem is None and password != fields.get("confirm", ""):
            problem = "the two passwords differ"
        if problem is not None:
            return setup_page(400, ctx.request, link, user, problem[0].upper() + problem[1:] + ".")
        done = storage.users.finish_setup(hash_token(link), hash_password(password))
        if done is None:
            # Used or expired while the password was being hashed.
            return spent()
        value, _ = session.sign_in_user(storage, done[0], settings, ctx.request)
        return redirect("/", {"Set-Cookie": session.set_cookie(ctx.request, value, settings)})

    return [
        Route("GET", "/login", None, h_login_form),
        # An argon2 check takes a fifth of a second or more of CPU: on Robyn's worker
        # thread it would hold up every other request of that thread (gateways' batches).
        Route("POST", "/login", None, h_login, slow=True),
        Route("GET", "/setup", None, h_setup_form),
        Route("POST", "/setup", None, h_setup, slow=True),
    ]

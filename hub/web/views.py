"""The console's pages and their routes (registered by hub.app beside the API's).

Every page but sign-in and setup (hub.web.signin) needs a live session; without one it
redirects to /login. A page is a shell with the signed-in role, the CSRF token and what it
shows (ids) in ``data-`` attributes: the scripts fill it from the JSON API and keep it
fresh. What a role may do is decided by the API for every request; the pages only leave out
the controls a role cannot use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.api.http import Ctx, Raw, Route, Services
from hub.console_settings import ConsoleSettings
from hub.web import assets, csrf, oidc, render, session, signin
from hub.web.responses import form as _form
from hub.web.responses import html as _html
from hub.web.responses import redirect as _redirect


def _numeric(ctx: Ctx) -> int | None:
    raw = ctx.path("id") or ""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def routes(hub: Services) -> list[Route]:
    storage = hub.storage
    settings: ConsoleSettings = hub.settings.console

    def page(ctx: Ctx, template: str, title: str, **context: Any) -> Raw:
        found = session.current(storage, ctx.request)
        if found is None:
            return _redirect("/login")
        role = found.principal.role
        body = render.page(
            template,
            title=title,
            page=template.removesuffix(".html"),
            role=role,
            person=found.principal.display or found.principal.name,
            csrf=found.csrf,
            csrf_field=csrf.FIELD,
            poll_ms=int(settings.poll_interval_s * 1000),
            time_zone=settings.time_zone,
            can_ack=role in ("operator", "admin"),
            is_admin=role == "admin",
            **context,
        )
        return _html(200, body)

    def by_id(template: str, title: str, what: str) -> Callable[[Ctx], Raw]:
        def view(ctx: Ctx) -> Raw:
            item = _numeric(ctx)
            if item is None:
                return _html(404, render.page("missing.html", what=what))
            return page(ctx, template, f"{title} {item}", item_id=item)

        view.__name__ = f"console_{template.removesuffix('.html')}"
        view.__doc__ = f"The console's {what} page."
        return view

    def h_logout(ctx: Ctx) -> Raw:
        """End the session (form with the CSRF token)."""
        found = session.current(storage, ctx.request)
        clear = {"Set-Cookie": session.clear_cookie(ctx.request, settings)}
        if found is None:
            return _redirect("/login", clear)
        csrf.check(ctx.request, found.csrf, _form(ctx).get(csrf.FIELD))
        session.sign_out(storage, found)
        return _redirect("/login", clear)

    def h_fleet(ctx: Ctx) -> Raw:
        """The fleet: every gateway, online or not, with its backlog and counters."""
        return page(ctx, "fleet.html", "Fleet")

    def h_plant(ctx: Ctx) -> Raw:
        """Factories, the top of factory -> machine -> sensor."""
        return page(ctx, "factories.html", "Factories")

    def h_alerts(ctx: Ctx) -> Raw:
        """The alert console: active first; acknowledge and shelve."""
        return page(ctx, "alerts.html", "Alerts")

    def h_alarm_report(ctx: Ctx) -> Raw:
        """The alarm report: the alarm rate against the ISA-18.2 / EEMUA 191 targets and the
        top sources, from GET /api/v1/alarm-report."""
        return page(ctx, "alarm_report.html", "Alarm report")

    def h_asset(name: str) -> Callable[[Ctx], Raw]:
        def asset(ctx: Ctx) -> Raw:
            """One of the console's static files."""
            body, ctype = assets.asset(name)
            return Raw(200, body, ctype, dict(assets.HEADERS))

        return asset

    return [
        *signin.routes(hub),
        *oidc.routes(hub),
        Route("POST", "/logout", None, h_logout),
        Route("GET", "/", None, h_fleet),
        Route("GET", "/factories", None, h_plant),
        Route("GET", "/factories/:id", None, by_id("factory.html", "Factory", "factory")),
        Route("GET", "/machines/:id", None, by_id("machine.html", "Machine", "machine")),
        Route("GET", "/sensors/:id", None, by_id("sensor.html", "Sensor", "sensor")),
        Route("GET", "/alerts", None, h_alerts),
        Route("GET", "/alarm-report", None, h_alarm_report),
        *[Route("GET", f"/static/{name}", None, h_asset(name)) for name in assets.names()],
    ]

"""The console's answers: HTML pages with the security headers, redirects, and the forms
pages post (urlencoded, bounded)."""

from __future__ import annotations

from urllib.parse import parse_qs

from hub.api.http import Ctx, Raw
from hub.errors import ApiError
from hub.web import render

HTML = "text/html; charset=utf-8"
# The largest console form: a name (64 characters) and a password (256), each character up
# to 4 UTF-8 bytes and 3 characters of percent-encoding per byte, a CSRF token and a setup
# link's token.
MAX_FORM = 8192


def redirect(to: str, headers: dict[str, str] | None = None) -> Raw:
    return Raw(303, b"", HTML, {"Location": to, "Cache-Control": "no-store", **(headers or {})})


def html(status: int, body: bytes, extra: dict[str, str] | None = None) -> Raw:
    return Raw(status, body, HTML, {**render.PAGE_HEADERS, **(extra or {})})


def form(ctx: Ctx) -> dict[str, str]:
    """The posted form's fields (the first of each name); 413 past :data:`MAX_FORM`."""
    if len(ctx.body) > MAX_FORM:
        raise ApiError(413, "too_large", f"a console form is at most {MAX_FORM} bytes")
    text = ctx.body.decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(text, max_num_fields=8).items()}

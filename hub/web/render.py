"""Pages from Jinja2 templates (hub/web/templates), with the console's security headers.

Autoescaping is on for every template: names of factories, machines and sensors come from
the field and end up in pages. The Content-Security-Policy lets a page load scripts,
styles, images and API data from the hub's own origin only, and no inline script or style
at all: everything a page runs is a file under /static/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Pages carry the CSRF token and the signed-in role: no cache keeps them.
PAGE_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(name: str, **context: Any) -> bytes:
    return _env.get_template(name).render(**context).encode("utf-8")

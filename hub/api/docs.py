"""``/openapi.json``, built once from the route table (hub.api.openapi), and ``/docs``:
Swagger UI 5 over it, served from the pinned swagger-ui-bundle-v2 package (Swagger UI 4
answers an OpenAPI 3.1 document with "Unable to render this definition"), never from a CDN:
plants run offline, and a page that loads code from the internet would also run whatever
that host serves. The page's Content-Security-Policy allows only this origin, so a forgotten
external URL would show as a broken page in any test browser.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable

import msgspec
import swagger_ui_bundle  # type: ignore[import-untyped]

from hub.api import openapi
from hub.api.http import Ctx, Handler, Raw, Route

# The files the page loads, by the name they are served under (/docs/<name>).
ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "init.js": "text/javascript; charset=utf-8",
}

# Swagger UI sets inline styles; scripts and everything else come from this origin only.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
# The files change only with the package version, which is part of their URL's query.
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}

VERSION = importlib.metadata.version("swagger-ui-bundle-v2")

# Our own start-up script instead of an inline one, so the CSP can forbid inline scripts.
_INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
};
"""

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>factory-edge hub API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css?v={VERSION}">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png?v={VERSION}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js?v={VERSION}"></script>
<script src="/docs/init.js?v={VERSION}"></script>
</body>
</html>
""".encode()


@functools.cache
def asset(name: str) -> tuple[bytes, str]:
    """(bytes, content type) of one of ASSETS; read from the package once, then kept."""
    ctype = ASSETS[name]
    if name == "init.js":
        return _INIT, ctype
    return (swagger_ui_bundle.swagger_ui_path / name).read_bytes(), ctype


def routes(described: Callable[[], list[Route]]) -> list[Route]:
    """``/openapi.json`` over the routes ``described`` returns, and the page that shows it."""
    spec: list[bytes] = []

    def h_openapi(ctx: Ctx) -> Raw:
        """This API's OpenAPI 3.1 document."""
        if not spec:
            rows = [(r.method, r.path, r.roles is not None, r.handler) for r in described()]
            spec.append(msgspec.json.encode(openapi.build(rows)))
        return Raw(200, spec[0])

    def h_docs(ctx: Ctx) -> Raw:
        """Interactive API documentation (Swagger UI over /openapi.json)."""
        return Raw(200, PAGE, "text/html; charset=utf-8", dict(HEADERS))

    return [
        Route("GET", "/openapi.json", None, h_openapi),
        Route("GET", "/docs", None, h_docs),
    ]


def _asset_handler(name: str) -> Handler:
    def h_asset(ctx: Ctx) -> Raw:
        """A Swagger UI file from the pinned swagger-ui-bundle-v2 package."""
        body, ctype = asset(name)
        return Raw(200, body, ctype, dict(ASSET_HEADERS))

    return h_asset


def asset_routes() -> list[Route]:
    """The files the page loads: outside the API's spec."""
    return [Route("GET", f"/docs/{name}", None, _asset_handler(name)) for name in ASSETS]

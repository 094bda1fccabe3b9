"""``/docs``: Swagger UI 5 over ``/openapi.json``, served from the pinned
swagger-ui-bundle-v2 package (Swagger UI 4 answers an OpenAPI 3.1 document with "Unable to
render this definition"), never from a CDN: plants run offline, and a page that loads code
from the internet would also run whatever that host serves. The page's
Content-Security-Policy allows only this origin, so a forgotten external URL would show as a
broken page in any test browser.
"""

from __future__ import annotations

import functools
import importlib.metadata

import swagger_ui_bundle  # type: ignore[import-untyped]

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

"""CSRF defences for everything that changes state with a session cookie.

Two independent checks, both on every POST/PUT/PATCH/DELETE that a cookie authenticates:

* the synchronizer token: a random secret bound to the session (stored with it), put in the
  page as a hidden form field and a ``<meta>`` tag; forms send it as ``csrf_token``, the
  console's scripts as the ``X-CSRF-Token`` header. Another site can make the browser send
  the cookie (were SameSite ever bypassed) but cannot read the page, so not the token.
* the origin: a browser names the page that made a request in ``Origin`` (and
  ``Sec-Fetch-Site``); anything but the hub itself is refused, also for sign-in, where no
  session (so no token) exists yet.

Sign-in and the setup page have no session yet: their forms carry a token that the same
page also set as the ``edge_signin`` cookie (``SameSite=Strict``, so no other site's request
has it), and a post must bring both, equal: a page of another site can neither read the
form's token nor make the browser send the cookie.

A request with a Bearer token needs neither: no browser adds that header by itself.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from hub.errors import ApiError

HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refused(message: str) -> ApiError:
    return ApiError(403, "csrf", message)


def same_origin(request: Any) -> bool:
    """False when the browser says the request comes from another site or origin.

    The hub's own origin is the Host header the request was sent to (nginx passes it on,
    deploy/nginx.conf). A request without Origin or Sec-Fetch-Site is from no browser, or an
    old one: it still needs the synchronizer token where one applies."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and str(site).lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin = str(origin)
    if origin == "null":
        return False
    host = str(request.headers.get("host") or "")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


def check_origin(request: Any) -> None:
    if not same_origin(request):
        raise refused("cross-origin request refused (Origin or Sec-Fetch-Site is not this hub)")


def check(request: Any, expected: str, submitted: str | None) -> None:
    """ApiError 403 ``csrf`` unless the request is same-origin and carries the token."""
    check_origin(request)
    if not submitted or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise refused("missing or wrong CSRF token; reload the page and try again")


def check_form(request: Any, cookie: str | None, submitted: str | None) -> None:
    """ApiError 403 ``csrf`` unless a sign-in or setup form is same-origin and brings the
    token its page set as the ``edge_signin`` cookie."""
    check_origin(request)
    if not cookie or not submitted or not hmac.compare_digest(submitted.encode(), cookie.encode()):
        raise refused("the form has expired or came from elsewhere; reload the page and try again")

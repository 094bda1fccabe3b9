"""The API's auth step: a Bearer token, or else a console session cookie.

With a cookie, a write (any method but GET/HEAD/OPTIONS) must also carry the session's CSRF
token in ``X-CSRF-Token`` and come from the hub's own origin (hub.web.csrf). A request with
an Authorization header is judged by that header alone: a wrong token is 401 even if a
cookie would do.
"""

from __future__ import annotations

from typing import Any

from hub.auth import Principal, TokenLookup, authenticate
from hub.storage import Storage
from hub.web import csrf, session


def authenticate_request(
    storage: Storage, request: Any, method: str, tokens: TokenLookup | None = None
) -> Principal:
    """``tokens``: where a Bearer token is looked up (the hub's per-process cache of gateway
    tokens, hub.auth.GatewayTokenCache); storage itself when None."""
    header = request.headers.get("authorization")
    if header is None:
        found = session.current(storage, request)
        if found is not None:
            if method not in csrf.SAFE_METHODS:
                csrf.check(request, found.csrf, request.headers.get(csrf.HEADER))
            return found.principal
    return authenticate(storage if tokens is None else tokens, header)

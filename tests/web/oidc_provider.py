"""A real OpenID provider for single sign-on tests: oidc-provider-mock (a Flask app on
Authlib's provider side) in its own process on a free port. Every client id and secret is
accepted; a person is whoever is typed into its authorization form, with the claims set for
their subject beforehand (PUT /users/<sub>). Those claims go into the ID token as given, so a
test can have the provider sign a token with a past ``exp`` or another ``aud``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from devtools.stack import PY, Proc, free_port, wait_for

START_TIMEOUT_S = 60.0


class OidcProvider:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(
            "oidc-provider",
            [PY, "-m", "oidc_provider_mock", "--port", str(self.port), "--host", "127.0.0.1"],
            workdir,
            env={"NO_COLOR": "1"},
        )

    def start(self) -> OidcProvider:
        self.proc.start()
        wait_for(
            "the OpenID provider's discovery document",
            lambda: (
                httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=1)
                .raise_for_status()
                .json()["issuer"]
                == self.url
            ),
            timeout=START_TIMEOUT_S,
        )
        return self

    def stop(self) -> None:
        self.proc.stop()

    def person(self, sub: str, **claims: Any) -> None:
        """The claims the provider puts in the ID token of ``sub`` from now on."""
        httpx.put(f"{self.url}/users/{quote(sub)}", json=claims, timeout=10).raise_for_status()

    def authorize(self, authorize_url: str, sub: str) -> str:
        """What a person does on the provider's form: sign in as ``sub``. The URL the
        provider sends the browser back to (the hub's callback with code and state)."""
        r = httpx.post(authorize_url, data={"sub": sub}, timeout=10)
        assert r.status_code == 302, r.text
        return r.headers["location"]

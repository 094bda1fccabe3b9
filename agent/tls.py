"""TLS to the hub: the SSL context the agent's HTTP clients use for ``[hub] url = https://...``.

The hub sits behind a TLS front (deploy/nginx.conf) whose certificate is often issued by a
plant's private CA: ``[hub] ca_file`` names that CA bundle (else the system's trust store is
used). ``client_cert`` + ``client_key`` present a client certificate for fronts that verify
clients (mTLS). Hostname checking stays on: the certificate must name the host in ``url``.
"""

from __future__ import annotations

import ssl
from typing import Protocol


class _HubTls(Protocol):
    @property
    def ca_file(self) -> str: ...
    @property
    def client_cert(self) -> str: ...
    @property
    def client_key(self) -> str: ...


def hub_ssl_context(hub: _HubTls) -> ssl.SSLContext:
    """A client context verifying the hub's certificate (against ``ca_file`` when set)."""
    ctx = ssl.create_default_context(cafile=hub.ca_file or None)
    # TLS 1.2 is the floor every supported nginx and Python speak; older ones are broken.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if hub.client_cert:
        ctx.load_cert_chain(hub.client_cert, hub.client_key or None)
    return ctx


def check_tls_files(hub: _HubTls) -> None:
    """Load the configured files once, so a bad PEM fails at config load, not at first sync.

    Raises ValueError naming the key."""
    if hub.ca_file:
        try:
            ssl.create_default_context(cafile=hub.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"ca_file {hub.ca_file!r} is not a readable PEM CA bundle: {exc}"
            ) from None
    if hub.client_cert:
        try:
            ssl.create_default_context().load_cert_chain(hub.client_cert, hub.client_key or None)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"client_cert {hub.client_cert!r} / client_key {hub.client_key!r} "
                f"do not load as a certificate and its key: {exc}"
            ) from None

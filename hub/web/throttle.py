"""The console's sign-in throttle: attempts per source address and per presented token or
user name.

Every attempt is counted before the token is looked at (hub.storage.access keeps the counts
in the database, shared by every hub process); once a key has had ``sign_in_max_failures``
attempts in its window, further attempts get 429 with Retry-After until the window ends,
without the token being checked. So a throttled caller learns nothing, and an unknown and
a revoked token take the same path and get the same answer. A good sign-in takes its
attempt back from the address and clears the token's (or the name's) count.

A user name is counted by its case-folded NFC key (hub.user_names), so ``Anna`` and
``ANNA`` share one count, whether or not there is such an account.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from hub.console_settings import ConsoleSettings
from hub.storage import Storage
from hub.user_names import name_key
from shared.timeutil import now


@dataclass(frozen=True, slots=True)
class Attempt:
    address_key: str
    token_key: str
    # Seconds until this caller may try again; 0.0: go ahead and check the token.
    wait_s: float


def source_address(request: Any, settings: ConsoleSettings) -> str:
    """The client's address: the peer's, or X-Real-IP when the peer is a trusted proxy."""
    peer = str(getattr(request, "ip_addr", None) or "")
    try:
        trusted = ipaddress.ip_address(peer) in settings.trusted_proxies
    except ValueError:
        trusted = False
    if trusted:
        forwarded = str(request.headers.get("x-real-ip") or "").strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return peer or "unknown"


def attempt(storage: Storage, settings: ConsoleSettings, address: str, token: str) -> Attempt:
    """Count one sign-in attempt from ``address`` with ``token``."""
    # Only the token's hash is kept, as everywhere else (a row names no secret).
    return _count(storage, settings, address, "token:" + _digest(token))


def attempt_name(storage: Storage, settings: ConsoleSettings, address: str, name: str) -> Attempt:
    """Count one sign-in attempt from ``address`` as user ``name``."""
    # Hashed too: a key of fixed length whatever was typed as the name.
    return _count(storage, settings, address, "user:" + _digest(name_key(name)))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _count(storage: Storage, settings: ConsoleSettings, address: str, token_key: str) -> Attempt:
    address_key = f"addr:{address}"
    at = now()
    window = settings.sign_in_window_s
    counts = storage.sign_in_attempt((address_key, token_key), at, window)
    waits = [
        start + window - at for tries, start in counts if tries > settings.sign_in_max_failures
    ]
    return Attempt(address_key, token_key, max(waits, default=0.0))


def succeeded(storage: Storage, found: Attempt) -> None:
    storage.sign_in_forgive([found.address_key], [found.token_key])

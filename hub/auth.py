"""Bearer tokens: minted here, stored only as SHA-256 hashes, checked in constant time.

A token is ``<prefix><secrets.token_urlsafe(32)>``; the prefix names the role so a leaked
token is recognisable in logs and secret scanners. The hub stores ``sha256(token)`` and
looks a presented token up by its hash: the secret itself never touches the database, and
the comparison that decides is ``hmac.compare_digest`` over equal-length digests, so
response timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Protocol

from hub.errors import forbidden, unauthorized

Role = Literal["gateway", "read", "operator", "admin"]
ROLES: tuple[Role, ...] = ("gateway", "read", "operator", "admin")
PREFIXES: dict[Role, str] = {"gateway": "feg_", "read": "fer_", "operator": "feo_", "admin": "fea_"}
# operator: read, plus acknowledging and shelving alerts (ALERT_ROLES); admin: everything.
READ_ROLES: tuple[Role, ...] = ("read", "operator", "admin")
ALERT_ROLES: tuple[Role, ...] = ("operator", "admin")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What storage knows about a token (never the token itself)."""

    id: int
    hash: str
    role: Role
    revoked: bool
    gateway_id: int | None = None  # the gateway's row id, for gateway tokens
    gateway_name: str | None = None
    factory_id: int | None = None
    # The factories a person's token is limited to; None: every factory.
    factories: frozenset[int] | None = None
    name: str | None = None  # a token's label (``token add --name``)


Kind = Literal["token", "user", "gateway", "system"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is behind a request: a token (a machine, a script, a gateway) or a person.

    ``factories`` is the scope: None sees every factory, else only these factory ids.
    A person signed in to the console has ``user_id`` set; ``token_id`` is then the id of
    the session's credential row it was checked against (0 for a person without a token).
    """

    token_id: int
    role: Role
    gateway_id: int | None = None
    gateway_name: str | None = None
    factory_id: int | None = None
    user_id: int | None = None
    name: str | None = None
    display: str | None = None
    factories: frozenset[int] | None = None

    @property
    def kind(self) -> Kind:
        if self.user_id is not None:
            return "user"
        return "gateway" if self.role == "gateway" else "token"

    @property
    def quota_key(self) -> int:
        """Whose rate limit and read budget a request uses: its token's, or a person's own
        (negative, so it never meets a token's id; people all have token_id 0)."""
        return self.token_id if self.user_id is None else -self.user_id

    def by(self) -> dict[str, object]:
        """How journal entries, audit rows and webhooks name who acted."""
        name = self.name if self.name is not None else self.gateway_name
        return {
            "kind": self.kind,
            "name": name,
            "display": self.display,
            "role": self.role,
            "token_id": self.token_id if self.user_id is None else None,
        }


class TokenLookup(Protocol):
    def token_by_hash(self, token_hash: str) -> TokenRecord | None: ...


class GatewayTokenCache:
    """A per-process memory of gateway tokens' lookups: token hash -> record, for ``ttl_s``
    seconds and at most ``size`` tokens (the least recently used goes first).

    Only gateway tokens are kept, and only while not revoked: every batch's own write
    transaction checks again that its token and gateway are not revoked (hub.storage.ingest),
    so a revocation bites on the next batch whatever this remembers. People's tokens are
    looked up on every request, so their revocation bites at once too. What else a record
    holds (the gateway's name and factory) never changes, so the TTL bounds nothing but how
    long a gateway gone quiet is remembered; it is long enough to span a loaded hub's sync
    interval (a batch every few seconds per gateway), which a TTL of 5 s missed half the time.
    """

    def __init__(self, lookup: TokenLookup, *, ttl_s: float = 30.0, size: int = 4096) -> None:
        self._lookup = lookup
        self._ttl = ttl_s
        self._size = size
        self._lock = threading.Lock()  # Robyn runs handlers on several threads
        self._kept: OrderedDict[str, tuple[float, TokenRecord]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        at = time.monotonic()
        with self._lock:
            kept = self._kept.get(token_hash)
            if kept is not None:
                if kept[0] > at:
                    self._kept.move_to_end(token_hash)
                    return kept[1]
                del self._kept[token_hash]
        record = self._lookup.token_by_hash(token_hash)
        if record is not None and record.role == "gateway" and not record.revoked:
            with self._lock:
                self._kept[token_hash] = (at + self._ttl, record)
                self._kept.move_to_end(token_hash)
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        return record


def generate_token(role: Role) -> str:
    return PREFIXES[role] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def authenticate(lookup: TokenLookup, header: str | None) -> Principal:
    """The caller behind an Authorization header, or ApiError 401."""
    token = bearer(header)
    if token is None or len(token) > 256:
        raise unauthorized()
    digest = hash_token(token)
    record = lookup.token_by_hash(digest)
    if record is None or not hmac.compare_digest(record.hash, digest) or record.revoked:
        raise unauthorized()
    return Principal(
        token_id=record.id,
        role=record.role,
        gateway_id=record.gateway_id,
        gateway_name=record.gateway_name,
        factory_id=record.factory_id,
        factories=record.factories,
        name=record.name,
    )


def require(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    """ApiError 403 unless the principal holds one of ``roles``."""
    if principal.role not in roles:
        raise forbidden(f"a {principal.role} token may not do this (needs {' or '.join(roles)})")
    return principal

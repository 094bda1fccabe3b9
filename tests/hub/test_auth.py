"""Tokens: role prefixes, hashes only, 401 vs 403."""

from __future__ import annotations

import hashlib

import pytest

from hub.auth import (
    PREFIXES,
    READ_ROLES,
    authenticate,
    bearer,
    generate_token,
    hash_token,
    require,
)
from hub.errors import ApiError
from hub.storage import Storage
from tests.hub.conftest import dump, query

# ``storage`` (tests/hub/conftest.py): each test here runs on SQLite and on PostgreSQL.


@pytest.mark.parametrize("role", ["gateway", "read", "admin"])
def test_token_shape(role: str) -> None:
    token = generate_token(role)  # type: ignore[arg-type]
    assert token.startswith(PREFIXES[role])  # type: ignore[index]
    assert len(token) == 4 + 43
    assert generate_token(role) != token  # type: ignore[arg-type]


def test_hash_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_only_the_hash_is_stored(storage: Storage) -> None:
    token = generate_token("admin")
    storage.add_token("admin", hash_token(token))
    gw_token = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(gw_token))
    stored = {row[0] for row in query(storage, "SELECT hash FROM tokens")}
    assert stored == {hash_token(token), hash_token(gw_token)}
    everything = dump(storage)
    assert token not in everything and gw_token not in everything


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer(header: str | None, expected: str | None) -> None:
    assert bearer(header) == expected


def test_authenticate(storage: Storage) -> None:
    read = generate_token("read")
    storage.add_token("read", hash_token(read))
    gw = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(gw))

    principal = authenticate(storage, f"Bearer {read}")
    assert principal.role == "read" and principal.gateway_id is None
    assert require(principal, READ_ROLES) is principal

    gateway = authenticate(storage, f"Bearer {gw}")
    assert gateway.role == "gateway" and gateway.gateway_name == "gw-01"
    with pytest.raises(ApiError) as forbidden:
        require(gateway, READ_ROLES)
    assert forbidden.value.status == 403

    for header in (None, "Bearer nope", f"Bearer {read}x", f"Token {read}", "Bearer " + "x" * 1000):
        with pytest.raises(ApiError) as err:
            authenticate(storage, header)
        assert err.value.status == 401


def test_revoked_token_is_401(storage: Storage) -> None:
    old = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(old))
    new = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(new), rotate=True)
    with pytest.raises(ApiError) as err:
        authenticate(storage, f"Bearer {old}")
    assert err.value.status == 401
    assert authenticate(storage, f"Bearer {new}").gateway_name == "gw-01"


def test_tokens_are_high_entropy() -> None:
    import base64

    tokens = {generate_token("read") for _ in range(1000)}
    assert len(tokens) == 1000
    for token in list(tokens)[:20]:
        secret = token.removeprefix(PREFIXES["read"])
        assert len(base64.urlsafe_b64decode(secret + "=")) == 32  # 256 random bits


def test_list_tokens_never_includes_the_hash(storage: Storage) -> None:
    admin = generate_token("admin")
    storage.add_token("admin", hash_token(admin))
    storage.add_gateway("gw-01", "acme", hash_token(generate_token("gateway")))
    rows = storage.list_tokens()
    assert [(r["id"], r["role"], r["gateway"], r["revoked"]) for r in rows] == [
        (1, "admin", None, 0),
        (2, "gateway", "gw-01", 0),
    ]
    assert all("hash" not in r for r in rows)
    assert hash_token(admin) not in repr(rows)


def test_revoke_token(storage: Storage) -> None:
    keep, drop = generate_token("read"), generate_token("read")
    storage.add_token("read", hash_token(keep))
    drop_id = storage.add_token("read", hash_token(drop))
    assert storage.revoke_token(drop_id) is True
    assert storage.revoke_token(999) is False
    with pytest.raises(ApiError) as err:
        authenticate(storage, f"Bearer {drop}")
    assert err.value.status == 401
    assert authenticate(storage, f"Bearer {keep}").role == "read"


def test_revoke_gateway_revokes_all_its_tokens(storage: Storage) -> None:
    old, new = generate_token("gateway"), generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(old))
    storage.add_gateway("gw-01", "acme", hash_token(new), rotate=True)
    other = generate_token("gateway")
    storage.add_gateway("gw-02", "acme", hash_token(other))
    assert storage.revoke_gateway("gw-01") is True
    assert storage.revoke_gateway("gw-nope") is False
    for token in (old, new):
        with pytest.raises(ApiError) as err:
            authenticate(storage, f"Bearer {token}")
        assert err.value.status == 401
    assert authenticate(storage, f"Bearer {other}").gateway_name == "gw-02"
    states = {(r["gateway"], bool(r["revoked"])) for r in storage.list_tokens()}
    assert states == {("gw-01", True), ("gw-02", False)}
    # --rotate re-enables it with a fresh token; the revoked ones stay dead.
    fresh = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(fresh), rotate=True)
    assert authenticate(storage, f"Bearer {fresh}").gateway_name == "gw-01"
    with pytest.raises(ApiError):
        authenticate(storage, f"Bearer {new}")

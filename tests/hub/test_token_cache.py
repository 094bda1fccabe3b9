"""The per-process cache of gateway tokens (hub.auth.GatewayTokenCache) and what keeps
revocation immediate despite it: each batch's own transaction re-checks its token and gateway.

On both engines: in process against real storage, and through a real hub process with the
revocations made by ``edge-hub`` while it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import ingest
from hub.auth import GatewayTokenCache, TokenRecord, authenticate, generate_token, hash_token
from hub.errors import ApiError
from hub.storage import Storage
from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import HubProcess, query, start_hub, token

LIMIT = 10**7
T0 = time.time() - 60


def body(gateway: str, seq: int) -> bytes:
    readings = [WireReading(seq + i, f"l1/m1/s{i}", T0 + seq + i, 1.0, None) for i in range(3)]
    return encode_batch(Batch(gateway_id=gateway, readings=readings))


def send(storage: Storage, tokens: GatewayTokenCache, secret: str, gateway: str, seq: int) -> int:
    principal = authenticate(tokens, f"Bearer {secret}")
    result = ingest.ingest(
        storage,
        principal,
        body(gateway, seq),
        None,
        max_body_bytes=LIMIT,
        max_decompressed_bytes=LIMIT,
    )
    return result.accepted


class Counting:
    """Real storage's lookup, counted: how often the cache went to the database."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls = 0

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        self.calls += 1
        return self.storage.token_by_hash(token_hash)


def test_gateway_tokens_are_looked_up_once_per_ttl(storage: Storage) -> None:
    secret = generate_token("gateway")
    storage.add_gateway("gw-01", "acme", hash_token(secret))
    lookup = Counting(storage)
    tokens = GatewayTokenCache(lookup, ttl_s=3600)
    for _ in range(5):
        assert authenticate(tokens, f"Bearer {secret}").gateway_name == "gw-01"
    assert lookup.calls == 1
    expired = GatewayTokenCache(lookup, ttl_s=0.0)
    for _ in range(3):
        authenticate(expired, f"Bearer {secret}")
    assert lookup.calls == 4  # a TTL of 0 remembers nothing


@pytest.mark.parametrize("how", ["revoke_gateway", "revoke_token", "rotate"])
def test_a_revoked_gateway_token_is_refused_on_its_next_batch(storage: Storage, how: str) -> None:
    secret = generate_token("gateway")
    gateway_id = storage.add_gateway("gw-01", "acme", hash_token(secret))
    tokens = GatewayTokenCache(storage, ttl_s=3600)  # the cache would answer for an hour
    assert send(storage, tokens, secret, "gw-01", 1) == 3
    if how == "revoke_gateway":
        assert storage.revoke_gateway("gw-01")
    elif how == "revoke_token":
        token_id = authenticate(storage, f"Bearer {secret}").token_id
        assert storage.revoke_token(token_id)
    else:
        storage.add_gateway("gw-01", "acme", hash_token(generate_token("gateway")), rotate=True)
    seen = query(storage, "SELECT last_seen FROM gateways WHERE id = ?", (gateway_id,))
    with pytest.raises(ApiError) as err:
        send(storage, tokens, secret, "gw-01", 100)
    assert err.value.status == 401
    # Nothing of the refused batch stayed: no reading, no report.
    assert query(storage, "SELECT count(*) FROM readings")[0][0] == 3
    assert query(storage, "SELECT last_seen FROM gateways WHERE id = ?", (gateway_id,)) == seen


def test_peoples_tokens_are_not_cached(storage: Storage) -> None:
    secret = generate_token("read")
    token_id = storage.add_token("read", hash_token(secret))
    lookup = Counting(storage)
    tokens = GatewayTokenCache(lookup, ttl_s=3600)
    authenticate(tokens, f"Bearer {secret}")
    authenticate(tokens, f"Bearer {secret}")
    assert lookup.calls == 2 and len(tokens) == 0
    assert storage.revoke_token(token_id)
    with pytest.raises(ApiError) as err:
        authenticate(tokens, f"Bearer {secret}")
    assert err.value.status == 401


def test_the_cache_is_bounded_and_keeps_the_recently_used(storage: Storage) -> None:
    secrets = [generate_token("gateway") for _ in range(6)]
    for i, secret in enumerate(secrets):
        storage.add_gateway(f"gw-{i}", "acme", hash_token(secret))
    lookup = Counting(storage)
    tokens = GatewayTokenCache(lookup, ttl_s=3600, size=3)
    for secret in secrets[:3]:
        authenticate(tokens, f"Bearer {secret}")
    authenticate(tokens, f"Bearer {secrets[0]}")  # the first is now the most recent
    for secret in secrets[3:5]:
        authenticate(tokens, f"Bearer {secret}")
    assert len(tokens) == 3
    calls = lookup.calls
    for secret in (secrets[0], secrets[3], secrets[4]):
        authenticate(tokens, f"Bearer {secret}")
    assert lookup.calls == calls  # kept
    authenticate(tokens, f"Bearer {secrets[1]}")
    assert lookup.calls == calls + 1  # evicted
    assert len(tokens) == 3


# -- through a real hub ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    server = start_hub(tmp_path_factory.mktemp("hub"), database=hub_database)
    yield server
    assert server.stop() == 0


def token_id(config: Path, role: str) -> int:
    rows = json.loads(token(config, "token", "list", "--json"))
    return max(int(r["id"]) for r in rows if r["role"] == role)


def test_the_hub_refuses_a_revoked_gateway_on_its_next_batch(served: HubProcess) -> None:
    served.tokens["gw"] = token(served.config, "gateway", "add", "gw-rv", "--factory", "acme")
    with served.client("gw") as c:
        for seq in (1, 10, 20):  # the token is in the hub's cache after the first
            assert c.post("/api/v1/ingest", content=body("gw-rv", seq)).status_code == 200
        token(served.config, "gateway", "revoke", "gw-rv")
        refused = c.post("/api/v1/ingest", content=body("gw-rv", 30))
        assert refused.status_code == 401, refused.text


def test_the_hub_refuses_a_revoked_read_token_on_its_next_request(served: HubProcess) -> None:
    served.tokens["read"] = token(served.config, "token", "add", "--role", "read")
    with served.client("read") as c:
        assert c.get("/api/v1/gateways").status_code == 200
        token(served.config, "token", "revoke", str(token_id(served.config, "read")))
        assert c.get("/api/v1/gateways").status_code == 401

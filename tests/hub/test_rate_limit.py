"""The per-token rate limit: the bucket itself, and 429 + Retry-After from a real hub."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.stack import Agent, Broker, Hub, stopping, wait_for
from hub.config import HubSettings
from hub.ratelimit import RateLimiter, retry_after_s
from tests.agent.conftest import Publisher
from tests.hub.conftest import HubProcess, start_hub, token


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(1) == pytest.approx(0.5)
    assert limiter.acquire(2) == 0.0  # another token has its own bucket
    clock.now += 0.5
    assert limiter.acquire(1) == 0.0
    assert limiter.acquire(1) > 0
    clock.now += 60  # refills to the burst, never beyond it
    assert [limiter.acquire(1) for _ in range(4)][-1] > 0


def test_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter(rate_per_s=0, burst=1)
    assert all(limiter.acquire(1) == 0.0 for _ in range(1000))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_s(0.01) == 1
    assert retry_after_s(1.2) == 2


def test_defaults_leave_room_for_a_draining_gateway() -> None:
    # A drain sends batches back to back; the hub stores at most a few tens per second.
    fields = HubSettings.model_fields
    assert fields["rate_limit_per_s"].default >= 50 and fields["rate_limit_burst"].default >= 100


@pytest.fixture(scope="module")
def limited_hub(
    tmp_path_factory: pytest.TempPathFactory, hub_database: str
) -> Iterator[HubProcess]:
    # 0.2/s: the bucket cannot refill between the requests of this test.
    server = start_hub(
        tmp_path_factory.mktemp("limited-hub"),
        database=hub_database,
        rate_limit_per_s=0.2,
        rate_limit_burst=3,
    )
    server.tokens = {
        "read": token(server.config, "token", "add", "--role", "read"),
        "other": token(server.config, "token", "add", "--role", "read"),
    }
    yield server
    assert server.stop() == 0


def test_429_with_envelope_and_retry_after(limited_hub: HubProcess) -> None:
    with limited_hub.client("read") as c:
        answers = [c.get("/api/v1/factories") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["meta"]["request_id"] == refused.headers["x-request-id"]
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    # The limit is per token, and probes/metrics are not behind it.
    with limited_hub.client("other") as c:
        assert c.get("/api/v1/factories").status_code == 200
    assert httpx.get(f"{limited_hub.url}/health/live").status_code == 200
    metrics = httpx.get(f"{limited_hub.url}/metrics").text
    assert _sample(metrics, "edge_hub_rate_limited_requests_total") == 1


def test_no_token_is_401_not_429(limited_hub: HubProcess) -> None:
    # Unauthenticated requests never reach (or drain) a bucket.
    with limited_hub.client() as c:
        assert [c.get("/api/v1/factories").status_code for _ in range(5)] == [401] * 5


def test_agent_waits_out_retry_after(tmp_path: Path) -> None:
    """A real agent refused with 429 waits as long as Retry-After says, not its own (much
    shorter) backoff, and every request carries the agent's own X-Request-ID."""
    broker = Broker(tmp_path).start()
    hub = Hub(tmp_path)
    token_ = hub.add_gateway("gw-rl")
    # One request per 2 s, no burst: the second sync is refused with Retry-After: 2.
    with hub.config.open("a") as fh:
        fh.write('rate_limit_per_s = 0.5\nrate_limit_burst = 1\nlog_format = "json"\n')
    agent = Agent(
        tmp_path,
        gateway_id="gw-rl",
        mqtt_port=broker.port,
        hub_url=hub.url,
        token=token_,
        settings={
            "hub": {"backoff_min_s": 0.01, "backoff_max_s": 0.05, "interval_s": 0.05},
            "metrics": {"listen": ""},
        },
    )
    with stopping(broker, hub.start(), agent.start()):
        pub = Publisher(broker.port)
        try:
            pub.publish("factory/l1/m1/temp", {"value": 1})
            wait_for("the first sync", lambda: agent.status()["backlog"] == 0)
            pub.publish("factory/l1/m1/temp", {"value": 2})
            wait_for("the second sync", lambda: agent.status()["backlog"] == 0)
        finally:
            pub.close()
        # Read from /metrics: the read token is rate-limited like any other.
        metrics = httpx.get(f"{hub.url}/metrics").text
        assert _sample(metrics, 'edge_hub_ingest_readings_total{result="accepted"}') == 2
        refused = _sample(metrics, "edge_hub_rate_limited_requests_total")
        # Its own backoff (<= 0.05 s) would have hit the hub dozens of times in those 2 s.
        assert 1 <= refused <= 3
    ingest_lines = [
        json.loads(line)
        for line in hub.proc.log_path.read_text().splitlines()
        if line.startswith("{") and '"/api/v1/ingest"' in line
    ]
    assert ingest_lines, "the hub logged no 429 for the agent's requests"
    assert all(re.fullmatch(r"[0-9a-f]{32}", doc["request_id"]) for doc in ingest_lines)


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")

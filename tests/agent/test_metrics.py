"""The agent's /metrics listener, scraped from a real edge-agent process (real mosquitto, hub)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.config import AgentConfig
from devtools.stack import Agent, Broker, Hub, free_port, metric_samples, stopping, wait_for
from shared.config import ConfigError, load_settings
from tests.agent.conftest import Publisher


class Parts:
    def __init__(self, workdir: Path) -> None:
        self.broker = Broker(workdir)
        self.hub = Hub(workdir)
        token = self.hub.add_gateway("gw-metrics")
        self.port = free_port()
        self.agent = Agent(
            workdir,
            gateway_id="gw-metrics",
            mqtt_port=self.broker.port,
            hub_url=self.hub.url,
            token=token,
            settings={"metrics": {"listen": f"127.0.0.1:{self.port}"}},
        )

    def start(self) -> None:
        self.broker.start()
        self.hub.start()
        self.agent.start()
        self.publisher = Publisher(self.broker.port)

    def scrape(self) -> dict[str, float]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5)
        assert r.status_code == 200
        return metric_samples(r.text)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path)
    # Stops whatever got started, also when starting fails half-way.
    with stopping(p.broker, p.hub, p.agent):
        p.start()
        try:
            yield p
        finally:
            p.publisher.close()


def test_metrics_follow_the_pipeline(parts: Parts) -> None:
    for i in range(20):
        parts.publisher.publish("factory/l1/m1/temp", {"value": 20 + i})
    parts.publisher.publish("factory/l1/m1/temp", "not a number")
    wait_for(
        "the hub to confirm every reading",
        lambda: parts.scrape()["edge_agent_sync_readings_total"] == 20,
    )
    m = parts.scrape()
    assert m["edge_agent_messages_received_total"] == 21  # the bad one included
    assert m["edge_agent_readings_stored_total"] == 20
    assert m["edge_agent_dead_letters_total"] == 1
    assert m["edge_agent_dropped_readings_total"] == 0
    assert m["edge_agent_backlog_readings"] == 0
    assert m["edge_agent_oldest_unsynced_age_seconds"] == 0
    assert m["edge_agent_mqtt_connected"] == 1
    assert m["edge_agent_buffer_bytes"] > 0
    assert m["edge_agent_buffer_recovered"] == 0
    assert m['edge_agent_sync_requests_total{result="ok"}'] >= 1
    assert m["edge_agent_sync_batch_readings_sum"] == 20
    assert m["edge_agent_sync_request_duration_seconds_count"] >= 1
    assert time.time() - m["edge_agent_last_sync_success_timestamp_seconds"] < 60
    assert "process_resident_memory_bytes" in m

    # Hub gone: the backlog grows, ages, and the sync counts its retries.
    parts.hub.stop()
    for i in range(5):
        parts.publisher.publish("factory/l1/m1/temp", {"value": 50 + i})
    wait_for("retries to be counted", lambda: parts.scrape()["edge_agent_sync_retries_total"] > 0)
    m = parts.scrape()
    assert m["edge_agent_backlog_readings"] == 5
    assert m["edge_agent_oldest_unsynced_age_seconds"] > 0
    assert m['edge_agent_sync_requests_total{result="retry"}'] >= 1
    assert m["edge_agent_sync_readings_total"] == 20


def test_listen_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('gateway_id = "gw"\n[metrics]\nlisten = ""\n')
    assert load_settings(AgentConfig, cfg).metrics.listen == ""  # off
    assert AgentConfig(gateway_id="gw").metrics.listen == "127.0.0.1:9108"
    cfg.write_text('gateway_id = "gw"\n[metrics]\nlisten = "9108"\n')
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        load_settings(AgentConfig, cfg)

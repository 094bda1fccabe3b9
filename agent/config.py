"""agent.toml, validated at start (see deploy/agent.toml for every key, commented)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.config import FileSettings
from shared.topics import TopicTemplate


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    subscribe: list[str] = Field(default_factory=lambda: ["factory/#"], min_length=1)
    topic_template: str = "factory/{line}/{machine}/{sensor}"
    client_id: str | None = None  # default: "edge-agent-{gateway_id}" (a persistent session)
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    max_payload_bytes: int = Field(default=64 * 1024, ge=16, le=16 * 1024 * 1024)
    # Commit (and then ack) at most this many messages per transaction. Keep it at or below
    # the broker's max_inflight_messages so that a full batch can always be in flight.
    batch_max: int = Field(default=1000, ge=1, le=100_000)
    batch_linger_ms: float = Field(default=20.0, ge=0, le=10_000)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)

    @field_validator("topic_template")
    @classmethod
    def _template_compiles(cls, value: str) -> str:
        TopicTemplate.compile(value)
        return value


class BufferConfig(_Section):
    path: str = "/var/lib/edge-agent/buffer.db"
    max_bytes: int = Field(default=2_000_000_000, ge=1_000_000)
    when_full: Literal["drop_oldest", "drop_newest", "block"] = "drop_oldest"
    # Dead letters are kept for inspection, newest first; older ones are pruned past this.
    max_dead_letters: int = Field(default=10_000, ge=1, le=10_000_000)


class HubConfig(_Section):
    url: str = "http://127.0.0.1:8080"
    token: str = ""
    batch_max_readings: int = Field(default=5000, ge=1, le=50_000)
    batch_max_bytes: int = Field(default=2_000_000, ge=10_000)
    gzip: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    interval_s: float = Field(
        default=1.0, gt=0, description="idle wait between syncs when caught up"
    )
    backoff_min_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)


class AgentConfig(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGE_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    gateway_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # On SIGTERM: how long to let the batch in hand and an in-flight sync request finish.
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edge-agent-{self.gateway_id}"

"""agent.toml, validated at start (see deploy/agent.toml for every key, commented)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

import threshold_checker as tc
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


class RuleConfig(_Section):
    """A default alert rule, in agent.toml as ``[rules."<key>"]``.

    ``<key>`` is a sensor key ``line/machine/sensor`` or a pattern with ``+`` for a whole
    level (``"+/+/temp"``); an exact key wins, then the pattern with the fewest ``+``::

        [rules."line1/press4/temp"]
        min = 15.0
        max = 85.0
        deadband = 2.0      # close only once back inside [min + 2, max - 2] ...
        clear_count = 3     # ... for 3 consecutive readings (one excursion = one alert)

        [rules."+/+/pressure"]
        max_rate = 5.0      # |dvalue/dt| in units per second

    Thresholds set at the hub (``PUT /api/v1/sensors/{id}/thresholds``) override these per
    sensor: a hub entry with a ``min`` or ``max`` replaces both bounds, a hub ``deadband``
    replaces the deadband; ``clear_count`` and ``max_rate`` always come from here. The last
    rules received from the hub are kept in the buffer and survive restarts without the hub.
    """

    min: float | None = None
    max: float | None = None
    deadband: float = Field(default=0.0, ge=0)
    clear_count: int = Field(default=1, ge=1, le=1_000_000)
    max_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _valid_rule(self) -> RuleConfig:
        self.to_rule()  # ValueError -> a config error naming the key
        return self

    def to_rule(self) -> tc.Rule:
        return tc.Rule(self.min, self.max, self.deadband, self.clear_count, self.max_rate)


class AlertsConfig(_Section):
    """Edge alerts: published on MQTT for local HMIs/actuators and synced to the hub."""

    enabled: bool = True
    # Published on "{topic_prefix}/{line}/{machine}/{sensor}" as JSON.
    topic_prefix: str = Field(default="alerts", min_length=1, pattern=r"^[^+#]+$")
    qos: int = Field(default=1, ge=0, le=2)
    retain: bool = False
    # Fetch the hub's rules this often even when no ingest response said they changed.
    refresh_s: float = Field(default=300.0, gt=0)
    # Alert rows sent to the hub per sync request.
    batch_max: int = Field(default=1000, ge=1, le=10_000)


class AgentConfig(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGE_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    gateway_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    # Default alert rules by sensor key or "+" pattern, see RuleConfig.
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # On SIGTERM: how long to let the batch in hand and an in-flight sync request finish.
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("rules")
    @classmethod
    def _rule_keys(cls, value: dict[str, RuleConfig]) -> dict[str, RuleConfig]:
        tc.RuleEngine({k: r.to_rule() for k, r in value.items()})  # checks every key
        return value

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edge-agent-{self.gateway_id}"

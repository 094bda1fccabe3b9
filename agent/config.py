"""agent.toml, validated at start (see deploy/agent.toml for every key, commented)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

import threshold_checker as tc
from agent.tls import check_tls_files
from shared.config import FileSettings
from shared.ids import validate_gateway_id
from shared.logs import LogFormat, LogLevel
from shared.netaddr import parse_host_port
from shared.payload import TsWindow, WindowSeconds, window_from_limits
from shared.topics import TopicTemplate
from shared.wire import MAX_ALERTS_PER_BATCH


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
    # TLS to the broker. tls_ca: the CA bundle that signed the broker's certificate (default:
    # the system's); tls_cert + tls_key: a client certificate, for brokers that require one.
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # Skips the hostname check only (the chain is still verified): for a broker reached by
    # an IP or name its certificate does not list. Off by default; never needed with a
    # properly issued certificate.
    tls_insecure: bool = False
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

    @field_validator("tls_ca", "tls_cert", "tls_key")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        # EDGE_AGENT_MQTT__TLS_CA= in an EnvironmentFile means "not set", not a file named "".
        return value or None

    @model_validator(mode="after")
    def _tls_consistent(self) -> MqttConfig:
        given = [k for k in ("tls_ca", "tls_cert", "tls_key") if getattr(self, k)]
        if not self.tls and (given or self.tls_insecure):
            raise ValueError(f"{', '.join(given) or 'tls_insecure'} needs tls = true")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (a client certificate and its key)")
        for key in given:
            path = getattr(self, key)
            if not os.access(path, os.R_OK):
                raise ValueError(f"{key} {path!r} does not exist or is not readable")
        return self


class BufferConfig(_Section):
    path: str = "/var/lib/edge-agent/buffer.db"
    max_bytes: int = Field(default=2_000_000_000, ge=1_000_000)
    when_full: Literal["drop_oldest", "drop_newest", "block"] = "drop_oldest"
    # What an acknowledged reading survives (agent.buffer.db): "process", a crash or kill -9
    # of the agent; "power", also a power cut, at one fsync per committed batch.
    durability: Literal["process", "power"] = "process"
    # Dead letters are kept for inspection, newest first; older ones are pruned past this.
    max_dead_letters: int = Field(default=10_000, ge=1, le=10_000_000)


class IngestConfig(_Section):
    """``[ingest]``: what the agent accepts from sensors beyond the payload format."""

    # A reading whose ts lies further than this ahead of / behind the time the agent received
    # it goes to dead letters (0 = no limit). The past default only catches clocks that reset
    # (to 1970, or to a firmware date); tighten it where sensors are known to be in sync.
    max_future_s: WindowSeconds = 300.0
    max_past_s: WindowSeconds = 10 * 365 * 86400.0

    def window(self) -> TsWindow:
        return window_from_limits(self.max_future_s, self.max_past_s)


class HubConfig(_Section):
    url: str = "http://127.0.0.1:8080"
    token: str = ""
    # 40k: the hub's cost is mostly per request (each commit rewrites one index page per
    # sensor), so a 10M backlog drains at 130-160k/s against 88-108k/s with 20k (README).
    batch_max_readings: int = Field(default=40_000, ge=1, le=50_000)
    batch_max_bytes: int = Field(default=4_000_000, ge=10_000)
    gzip: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    interval_s: float = Field(
        default=1.0, gt=0, description="idle wait between syncs when caught up"
    )
    # Retry waits are random in [backoff_min_s, min(backoff_max_s, backoff_min_s * 2^n)]: the
    # cap bounds how long a hub that came back waits for the first batch (agent.sync).
    backoff_min_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=1.0, gt=0)
    # While a backlog drains, the share of each batch that readings newer than the backlog
    # may take, so they reach the hub in seconds instead of after the backlog (agent.sync).
    live_share: float = Field(default=0.5, gt=0, le=1)
    # TLS to the hub's front (agent.tls): ca_file, the CA bundle that signed the hub's
    # certificate ("" = the system's trust store); client_cert + client_key, a client
    # certificate for fronts that require one (mTLS). Only with an https:// url.
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""

    @model_validator(mode="after")
    def _backoff_order(self) -> HubConfig:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        return self

    @model_validator(mode="after")
    def _tls_files(self) -> HubConfig:
        given = [k for k in ("ca_file", "client_cert", "client_key") if getattr(self, k)]
        if given and not self.url.lower().startswith("https://"):
            raise ValueError(f"{', '.join(given)} need an https:// url")
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("client_cert and client_key go together (a certificate and its key)")
        for key in given:
            path = getattr(self, key)
            if not os.access(path, os.R_OK):
                raise ValueError(f"{key} {path!r} does not exist or is not readable")
        check_tls_files(self)
        return self


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
    # Alert rows sent to the hub per sync request; at most what a hub takes in one batch.
    batch_max: int = Field(default=1000, ge=1, le=MAX_ALERTS_PER_BATCH)


class MetricsConfig(_Section):
    """The Prometheus listener: ``/metrics`` on HOST:PORT; an empty string turns it off."""

    listen: str = "127.0.0.1:9108"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            try:
                parse_host_port(value, allow_port_zero=True)
            except ValueError:
                raise ValueError(
                    'listen must be HOST:PORT, e.g. 127.0.0.1:9108, or "" for off'
                ) from None
        return value


class SparkplugConfig(_Section):
    """``[sparkplug]``: Sparkplug B edge nodes beside the JSON sensors (docs/sparkplug.md)."""

    enabled: bool = False
    subscribe: list[str] = Field(default_factory=lambda: ["spBv1.0/#"], min_length=1)
    # At most one NCMD Node Control/Rebirth per edge node this often (a gap storm asks once).
    rebirth_min_interval_s: float = Field(default=5.0, ge=0)
    # Non-empty: act as this primary host, publishing spBv1.0/STATE/{primary_host_id}
    # (retained, with a will saying offline), so edge nodes that wait for it go online.
    primary_host_id: str = Field(default="", pattern=r"^[^/+#]*$")


class AgentConfig(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGE_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    gateway_id: str
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    sparkplug: SparkplugConfig = Field(default_factory=SparkplugConfig)
    # Default alert rules by sensor key or "+" pattern, see RuleConfig.
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    log_level: LogLevel = "info"
    log_format: LogFormat = "console"
    # On SIGTERM: how long to let the batch in hand and an in-flight sync request finish.
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("gateway_id")
    @classmethod
    def _gateway_id(cls, value: str) -> str:
        return validate_gateway_id(value)

    @field_validator("rules")
    @classmethod
    def _rule_keys(cls, value: dict[str, RuleConfig]) -> dict[str, RuleConfig]:
        tc.RuleEngine({k: r.to_rule() for k, r in value.items()})  # checks every key
        return value

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edge-agent-{self.gateway_id}"

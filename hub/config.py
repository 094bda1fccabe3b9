"""hub.toml, validated at start (see deploy/hub.toml for every key, commented)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from hub.alert_settings import AlarmSettings, AlertSettings, WebhookSettings
from hub.console_settings import ConsoleSettings
from hub.oidc_settings import OidcSettings
from hub.retention import RetentionSettings
from hub.storage.model import StorageError, Waits
from hub.storage.url import POSTGRES_SCHEMES, parse_database
from shared.config import FileSettings
from shared.logs import LogFormat, LogLevel
from shared.netaddr import parse_host_port
from shared.payload import TsWindow, WindowSeconds, window_from_limits


class HubSettings(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGE_HUB_", env_nested_delimiter="__", extra="forbid"
    )

    listen: str = "127.0.0.1:8080"
    database: str = "sqlite:////var/lib/edge-hub/hub.db"
    # PostgreSQL only: how long to wait to connect to each host of `database`, and for a
    # pooled connection; past either a request answers 503 database_unavailable.
    database_connect_timeout_s: float = Field(3.0, ge=1, le=60, allow_inf_nan=False)
    database_pool_timeout_s: float = Field(5.0, ge=0.5, le=120, allow_inf_nan=False)
    # PostgreSQL only: a database (a standby, e.g. ?target_session_attrs=prefer-standby) that
    # answers the history reads; unset: the primary answers them (docs/operations.md).
    read_database: str | None = None
    # The hub's address as people's browsers reach it (the TLS front), e.g.
    # https://hub.plant.example: the setup links `edge-hub user` prints start with it.
    # Unset: http://<listen>.
    public_url: str | None = None
    anomaly_url: str = "http://127.0.0.1:3001"
    # Background anomaly scan of recently active sensors (results: ?stored=true); 0 = off.
    anomaly_scan_interval_s: float = Field(60.0, ge=0)
    # How many of a sensor's newest readings one scan analyses, and with which rule.
    anomaly_scan_limit: int = Field(100, ge=2, le=10_000)
    anomaly_scan_threshold: float = Field(2.0, ge=0, le=1e6, allow_inf_nan=False)
    anomaly_scan_method: Literal["zscore", "mad"] = "zscore"
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # A gzip bomb is bounded by this, not by max_body_bytes (which counts compressed bytes).
    max_decompressed_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # Hub processes sharing `listen` (hub.supervisor), and Robyn worker threads in each.
    workers: int = Field(1, ge=1, le=64)
    threads: int = Field(2, ge=1, le=64)
    # A reading whose ts lies further than this ahead of / behind the hub's clock is refused
    # (422 naming its seq; the agent moves it to its dead letters). 0 = no limit. The past
    # default only catches clocks that reset; an agent's backlog may be weeks old.
    max_future_s: WindowSeconds = 600.0
    max_past_s: WindowSeconds = 10 * 365 * 86400.0
    log_level: LogLevel = "info"
    log_format: LogFormat = "console"
    # Per-token token bucket: a sustained rate and a burst on top. A gateway draining a
    # backlog sends back to back (tens of requests/s at most), so the defaults never throttle
    # a gateway's sync; they stop a runaway script. 0 = no limit.
    rate_limit_per_s: float = Field(100.0, ge=0, allow_inf_nan=False)
    rate_limit_burst: int = Field(200, ge=1)
    # Expensive reads (any that may answer more than heavy_read_rows rows: hub.api.readcost)
    # draw on a second per-token bucket counted in rows, and at most max_concurrent_heavy_reads
    # run at once over all tokens (hub.ratelimit.ReadBudget). Robyn runs one handler per
    # worker thread, so with as many heavy reads as threads a sync batch waits behind them
    # for seconds: the cap must stay below `threads`. read_budget_rows_per_s = 0: off.
    heavy_read_rows: int = Field(10_000, ge=1)
    read_budget_rows_per_s: float = Field(200_000.0, ge=0, allow_inf_nan=False)
    read_budget_burst_rows: int = Field(400_000, ge=1)
    max_concurrent_heavy_reads: int = Field(1, ge=1, le=63)
    # New sensors: a batch may create at most max_new_sensors_per_batch, and a factory (the
    # gateways registered to it share its sensors) may hold at most max_sensors_per_factory.
    # Readings past either limit are refused with a 422 naming the limit and their seq (the
    # agent sets them aside as dead letters); nothing of that batch is stored.
    max_new_sensors_per_batch: int = Field(1_000, ge=1)
    max_sensors_per_factory: int = Field(10_000, ge=1)

    # [alerts] (gateway offline) and [[webhooks]] (hub.alert_settings, hub.notify).
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings.model_validate({}))
    # [alarms]: chattering and stale marks (hub.alert_settings.AlarmSettings).
    alarms: AlarmSettings = Field(default_factory=lambda: AlarmSettings.model_validate({}))
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    # [retention] days per tier: raw readings, 1-minute and 1-hour rollups (hub.retention).
    retention: RetentionSettings = Field(
        default_factory=lambda: RetentionSettings.model_validate({})
    )
    # [console]: the operator console's sessions and refresh rate (hub.console_settings).
    console: ConsoleSettings = Field(default_factory=lambda: ConsoleSettings.model_validate({}))
    # [oidc]: single sign-on through the plant's OpenID provider (hub.oidc_settings); unset:
    # people sign in with their name and password only.
    oidc: OidcSettings | None = None
    # false: ingest skips rollup maintenance. Only for the benchmark's baseline (bench/
    # history.py): series and stats then miss what was stored meanwhile.
    rollups: bool = True

    @model_validator(mode="after")
    def _heavy_below_workers(self) -> HubSettings:
        if self.threads > 1 and self.max_concurrent_heavy_reads >= self.threads:
            raise ValueError(
                f"max_concurrent_heavy_reads ({self.max_concurrent_heavy_reads}) must be below "
                f"threads ({self.threads}): otherwise large reads can hold every thread and "
                "ingest waits behind them"
            )
        return self

    @model_validator(mode="after")
    def _read_database(self) -> HubSettings:
        if self.read_database is None:
            return self
        if not self.read_database.startswith(POSTGRES_SCHEMES):
            raise ValueError(
                "read_database must be a postgresql:// URL (the same form as database, e.g. "
                "postgresql://edge:pw@pg-b:5432/edge?target_session_attrs=prefer-standby)"
            )
        if not self.database.startswith(POSTGRES_SCHEMES):
            raise ValueError(
                "read_database is for a PostgreSQL database; database is SQLite, which has no "
                "standbys: remove read_database"
            )
        try:
            parse_database(self.read_database)
        except StorageError as exc:
            raise ValueError(str(exc).replace("database:", "read_database:", 1)) from None
        return self

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        try:
            parse_host_port(value)
        except ValueError:
            raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:8080") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http:// or https:// URL")
        return None if value is None else value.rstrip("/")

    def public_base(self) -> str:
        """Where people's browsers reach the hub: public_url, else http://<listen>."""
        return self.public_url or f"http://{self.listen}"

    @field_validator("anomaly_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("anomaly_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", *POSTGRES_SCHEMES)):
            raise ValueError(
                "database must be a sqlite:/// URL (sqlite:////abs/path.db or sqlite:///rel.db) "
                "or postgresql://user:password@host:5432/dbname (also postgresql+psycopg://)"
            )
        try:
            parse_database(value)  # the engine's own checks (a path after sqlite:///)
        except StorageError as exc:
            raise ValueError(str(exc)) from None
        return value

    def database_waits(self) -> Waits:
        return Waits(self.database_connect_timeout_s, self.database_pool_timeout_s)

    def ts_window(self) -> TsWindow:
        return window_from_limits(self.max_future_s, self.max_past_s)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def database_path(self) -> str:
        """sqlite:////abs/x.db -> /abs/x.db; sqlite:///rel.db -> rel.db (SQLAlchemy's rule)."""
        return self.database[len("sqlite:///") :]

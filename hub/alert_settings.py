"""hub.toml's ``[alerts]``, ``[alarms]`` and ``[[webhooks]]`` tables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.storage.alarm_marks import AlarmLimits

WebhookEvent = Literal[
    "alert.opened", "alert.cleared", "alert.acknowledged", "gateway.offline", "gateway.online"
]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = (
    "alert.opened",
    "alert.cleared",
    "alert.acknowledged",
    "gateway.offline",
    "gateway.online",
)


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No sync for this long: the gateway is offline (one alert; its sensors read as stale).
    gateway_offline_after_s: float = Field(120.0, gt=0, le=30 * 86400, allow_inf_nan=False)
    # How often the worker looks for silent gateways and shelves that ran out.
    check_interval_s: float = Field(5.0, gt=0, le=3600, allow_inf_nan=False)


class AlarmSettings(BaseModel):
    """``[alarms]``: EEMUA 191's nuisance marks (hub.storage.alarm_marks)."""

    model_config = ConfigDict(extra="forbid")

    # A source that clears this often within chattering_window_s chatters.
    chattering_count: int = Field(3, ge=2, le=1000)
    chattering_window_s: float = Field(60.0, gt=0, le=86400, allow_inf_nan=False)
    # Shelve a chattering alert for this long (no webhooks meanwhile); 0: mark it only.
    chattering_shelve_s: float = Field(0.0, ge=0, le=7 * 86400, allow_inf_nan=False)
    # Active longer than this: the alert is marked stale.
    stale_after_s: float = Field(86400.0, gt=0, le=365 * 86400, allow_inf_nan=False)

    def limits(self) -> AlarmLimits:
        return AlarmLimits(
            self.chattering_count,
            self.chattering_window_s,
            self.chattering_shelve_s,
            self.stale_after_s,
        )


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    # The key of the HMAC-SHA256 over the body, sent as X-Edge-Signature: sha256=<hex>.
    secret: str = Field(min_length=1)
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))
    # Each step of an attempt (connecting, sending, each read of the answer); a whole attempt
    # is cut off after three of them (hub.notify.ATTEMPT_DEADLINE).
    timeout_s: float = Field(10.0, gt=0, le=300, allow_inf_nan=False)
    # Attempts per event before it is given up (counted as failed in /metrics).
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_min_s: float = Field(0.5, gt=0, le=3600, allow_inf_nan=False)
    backoff_max_s: float = Field(60.0, gt=0, le=86400, allow_inf_nan=False)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) > 2000:
            raise ValueError("webhook url must be an http:// or https:// URL")
        return value

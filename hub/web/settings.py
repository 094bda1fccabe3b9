"""hub.toml's ``[console]`` table: the operator console's sessions and refresh rate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A session ends this long after sign-in, whatever the activity: a console left open on
    # a shared plant-floor screen must not stay signed in for ever. Then sign in again.
    session_lifetime_s: float = Field(8 * 3600.0, gt=0, le=30 * 86400, allow_inf_nan=False)
    # How often open pages poll the JSON API for fresh data (fleet, alerts, latest value).
    poll_interval_s: float = Field(5.0, ge=0.2, le=3600, allow_inf_nan=False)
    # The cookie's Secure flag. auto: set when the request came over HTTPS, as the TLS front
    # (deploy/nginx.conf) says in X-Forwarded-Proto; a hub on plain http://127.0.0.1 still
    # works in a browser.
    secure_cookie: Literal["auto", "always", "never"] = "auto"

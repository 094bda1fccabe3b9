"""hub.toml's ``[console]`` table: the operator console's sessions, sign-in throttle and
refresh rate."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, field_validator


def _loopback() -> list[IPv4Address | IPv6Address]:
    return [IPv4Address("127.0.0.1"), IPv6Address("::1")]


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A session ends this long after sign-in, whatever the activity: a console left open on
    # a shared plant-floor screen must not stay signed in for ever. Then sign in again.
    session_lifetime_s: float = Field(8 * 3600.0, gt=0, le=30 * 86400, allow_inf_nan=False)
    # A person's session (signed in with a name and password) also ends after this long
    # without use: a page load or any request the console makes with it. Pages poll the
    # API while open, so an open console counts as in use; a closed one runs out.
    session_idle_s: float = Field(3600.0, gt=0, le=30 * 86400, allow_inf_nan=False)
    # true: the sign-in page also takes an API token and exchanges it for a session, as
    # before people had accounts. false: only names and passwords sign in.
    token_sign_in: bool = True
    # After this many wrong passwords in a row an account is locked for lockout_s seconds
    # (or until `edge-hub user unlock`); a locked account's sign-in answers like a wrong
    # password, so guessing it learns nothing.
    lockout_failures: int = Field(10, ge=1, le=10_000)
    lockout_s: float = Field(900.0, gt=0, le=365 * 86400, allow_inf_nan=False)
    # How often open pages poll the JSON API for fresh data (fleet, alerts, latest value).
    poll_interval_s: float = Field(5.0, ge=0.2, le=3600, allow_inf_nan=False)
    # The cookie's Secure flag. auto: set when the request came over HTTPS, as the TLS front
    # (deploy/nginx.conf) says in X-Forwarded-Proto; a hub on plain http://127.0.0.1 still
    # works in a browser.
    secure_cookie: Literal["auto", "always", "never"] = "auto"
    # Live sessions one token (or one person) may hold: a sign-in past this ends the oldest,
    # so a leaked token pasted on many screens cannot pile up sessions without bound.
    max_sessions_per_token: int = Field(10, ge=1, le=10_000)
    # Failed sign-ins: after sign_in_max_failures attempts in sign_in_window_s from one
    # address, or with one token or user name, the next get 429 with Retry-After until that
    # window ends. Counted in the database, so every hub process and host shares the counts.
    sign_in_max_failures: int = Field(10, ge=1, le=10_000)
    sign_in_window_s: float = Field(900.0, gt=0, le=86400, allow_inf_nan=False)
    # Peers whose X-Real-IP names the real client (the TLS front on this host sets it): the
    # address the sign-in throttle counts. Any other peer is counted by its own address.
    trusted_proxies: list[IPvAnyAddress] = Field(default_factory=_loopback)
    # People's passwords have at least this many characters (and are not one of the most
    # common ones: hub.passwords); no rules about which kinds of characters.
    password_min_length: int = Field(12, ge=8, le=256)
    # The plant's time zone (an IANA name): every time on the console's pages is shown in it,
    # whatever the zone of the browser showing it (a laptop set to another zone, a kiosk in
    # UTC), with the UTC instant on hover.
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # Checked at start against the zone database, so a typo is a config error now, not
        # a console that fails in every browser; its own names only: a file path into it
        # ("posix/...") loads in Python but not in a browser.
        try:
            known = value in available_timezones() and ZoneInfo(value) is not None
        except (ZoneInfoNotFoundError, ValueError):
            known = False
        if not known:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
            )
        return value

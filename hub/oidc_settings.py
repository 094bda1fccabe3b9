"""hub.toml's ``[oidc]`` table: single sign-on through the plant's OpenID provider
(hub.web.oidc), and ``[oidc.groups."GROUP"]``: what each of the provider's groups may do."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

CALLBACK = "/auth/oidc/callback"
Role = Literal["read", "operator", "admin"]


class GroupSettings(BaseModel):
    """A group of the provider's: its members sign in with this role, limited to these
    factories (none: every factory)."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    factories: list[str] = Field(default_factory=list)

    @field_validator("factories")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("a factory name may not be empty")
        return value


def _http_url(key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{key} must be an http:// or https:// URL, e.g. https://login.example")
    return value


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The provider's issuer URL: its settings are read from
    # <issuer>/.well-known/openid-configuration, and ID tokens must name it as their issuer.
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # The hub's public URL + /auth/oidc/callback, exactly as registered at the provider.
    redirect_url: str
    # The ID token claim that lists the person's groups, and the one with their full name.
    groups_claim: str = Field("groups", min_length=1)
    display_claim: str = Field("name", min_length=1)
    # The words on the sign-in page's button: "Sign in with <name>". Unset: the issuer's host.
    name: str | None = Field(None, min_length=1, max_length=64)
    # Scopes asked for; "openid" is always among them. Some providers send the groups claim
    # only when a scope of their own (e.g. "groups") is asked for.
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    groups: dict[str, GroupSettings] = Field(default_factory=dict)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _http_url("issuer", value).rstrip("/")

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, value: str) -> str:
        _http_url("redirect_url", value)
        if urlsplit(value).path != CALLBACK:
            raise ValueError(
                f"redirect_url must be the hub's public URL followed by {CALLBACK}, "
                f"e.g. https://hub.plant.example{CALLBACK}"
            )
        return value

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]

    @model_validator(mode="after")
    def _some_group(self) -> OidcSettings:
        # Nobody in an unmapped group signs in: with no group mapped, nobody ever could.
        if not self.groups:
            raise ValueError(
                '[oidc] maps no group: add at least one [oidc.groups."GROUP"] table with a role'
            )
        return self

    def button_name(self) -> str:
        return self.name or (urlsplit(self.issuer).hostname or self.issuer)

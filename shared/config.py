"""Config loading shared by edge-agent and edge-hub: one TOML file, every key also from env.

``EDGE_AGENT_MQTT__HOST=10.0.0.5`` overrides ``[mqtt] host`` (prefix, then the key path
joined by ``__``). Environment wins over the file, the file over the defaults. Unknown keys
are errors: a typo in a config file must stop the program, not be ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

T = TypeVar("T", bound="FileSettings")


class ConfigError(Exception):
    """A config problem, worded for the person who wrote the file."""


class FileSettings(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init kwargs; env must beat them.
        return (env_settings, init_settings)


def _describe(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        got = err.get("input")
        suffix = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {got!r})"
        lines.append(f"  {key}: {msg}{suffix}")
    return "\n".join(lines)


def load_settings(cls: type[T], path: str | Path | None) -> T:
    """Read ``path`` (TOML; may be None for env/defaults only) into ``cls``, or ConfigError."""
    data: dict[str, Any] = {}
    origin = "environment"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None

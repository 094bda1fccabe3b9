"""What ``edge-hub check-config`` prints: every setting, with the secrets masked.

The database password and the webhooks' HMAC keys would otherwise land in a terminal's
scrollback, a support ticket or a CI log. Masked the way messages and logs already mask the
database URL (hub.storage.url.without_password), so one rule covers every place.
"""

from __future__ import annotations

from typing import Any

from hub.config import HubSettings
from hub.storage.url import without_password

MASK = "***"
# Keys whose whole value is a secret, wherever they sit in the settings tree.
SECRET_KEYS = frozenset({"secret", "password", "client_secret"})


def _masked(key: str, value: Any) -> Any:
    if key in SECRET_KEYS and value:
        return MASK
    if isinstance(value, dict):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(key, v) for v in value]
    if isinstance(value, str) and "://" in value:
        return without_password(value)
    return value


def masked_settings(settings: HubSettings) -> dict[str, Any]:
    """The settings as ``model_dump`` gives them, secrets replaced by ``***``."""
    return {key: _masked(key, value) for key, value in settings.model_dump().items()}

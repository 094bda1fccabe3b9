"""hub.toml's [console] time_zone: an IANA name checked when the config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import HubSettings
from shared.config import ConfigError, load_settings


def load(tmp_path: Path, text: str) -> HubSettings:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return load_settings(HubSettings, path)


def test_the_plants_zone_defaults_to_utc(tmp_path: Path) -> None:
    assert load(tmp_path, "").console.time_zone == "UTC"
    zone = load(tmp_path, '[console]\ntime_zone = "Europe/Berlin"\n').console.time_zone
    assert zone == "Europe/Berlin"


@pytest.mark.parametrize(
    "zone", ["Europe/Berlln", "CEST", "posix/Europe/Berlin", "../../etc/passwd", "", "+01:00"]
)
def test_an_unknown_zone_is_a_config_error(tmp_path: Path, zone: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f'[console]\ntime_zone = "{zone}"\n')
    assert "time_zone" in str(err.value)
    assert f"unknown time zone {zone!r}" in str(err.value)

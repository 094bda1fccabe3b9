"""``[oidc]`` in hub.toml: what a mistake reads like at start, the defaults, what
check-config shows, and how a person's groups become a role and factories."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import HubSettings
from hub.config_view import masked_settings
from hub.oidc_settings import OidcSettings
from hub.web.oidc import mapped_access
from shared.config import ConfigError, load_settings

GOOD = """
[oidc]
issuer = "https://login.plant.example/realms/plant/"
client_id = "edge-hub"
client_secret = "s3cret-from-the-provider"
redirect_url = "https://hub.plant.example/auth/oidc/callback"
[oidc.groups."line-operators"]
role = "operator"
factories = ["plant-1"]
"""


def load(tmp_path: Path, text: str) -> HubSettings:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return load_settings(HubSettings, path)


def test_a_good_table_loads_with_the_defaults(tmp_path: Path) -> None:
    oidc = load(tmp_path, GOOD).oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.plant.example/realms/plant"
    assert (oidc.groups_claim, oidc.display_claim) == ("groups", "name")
    assert oidc.button_name() == "login.plant.example"
    assert "openid" in oidc.scopes
    assert load(tmp_path, "").oidc is None


def test_check_config_masks_the_client_secret(tmp_path: Path) -> None:
    shown = masked_settings(load(tmp_path, GOOD))
    assert shown["oidc"]["client_secret"] == "***"
    assert "s3cret" not in repr(shown)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ('client_id = "edge-hub"\n', "client_id"),
        ('role = "operator"\n', "role"),
        ('role = "operator"\n', "'read', 'operator' or 'admin'"),
        ("/auth/oidc/callback", "redirect_url must be the hub's public URL"),
        ("https://login", "issuer must be an http:// or https:// URL"),
        (
            '[oidc.groups."line-operators"]\nrole = "operator"\nfactories = ["plant-1"]\n',
            "maps no group",
        ),
    ],
)
def test_a_mistake_is_named(tmp_path: Path, change: str, words: str) -> None:
    replacement = {
        'role = "operator"\n': 'role = "superuser"\n' if "read" in words else "",
        "/auth/oidc/callback": "/callback",
        "https://login": "login",
    }.get(change, "")
    text = GOOD.replace(change, replacement)
    assert text != GOOD
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert words in str(err.value)


def settings(**groups: tuple[str, list[str]]) -> OidcSettings:
    return OidcSettings.model_validate(
        {
            "issuer": "https://login.example",
            "client_id": "hub",
            "client_secret": "x",
            "redirect_url": "https://hub.example/auth/oidc/callback",
            "groups": {g: {"role": r, "factories": f} for g, (r, f) in groups.items()},
        }
    )


def test_groups_give_the_highest_role_and_only_its_factories() -> None:
    oidc = settings(viewers=("read", []), ops_a=("operator", ["a"]), ops_b=("operator", ["b", "a"]))
    assert mapped_access(oidc, ["unknown"]) is None
    assert mapped_access(oidc, []) is None
    assert mapped_access(oidc, ["viewers"]) == ("read", [])
    # read everywhere and operator in a: operator in a only, never operator everywhere.
    assert mapped_access(oidc, ["viewers", "ops_a"]) == ("operator", ["a"])
    assert mapped_access(oidc, ["ops_a", "ops_b", "other"]) == ("operator", ["a", "b"])

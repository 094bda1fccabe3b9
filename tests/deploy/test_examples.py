"""deploy/agent.toml and deploy/hub.toml: they load through the real config loaders, name
every key the config models have (set, or commented out with its example), and the values
they set are the defaults they claim to be. A key added to a model without documenting it
here fails this test."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from agent.config import AgentConfig
from devtools.stack import REPO
from hub.config import HubSettings
from shared.config import FileSettings, load_settings

# A table, also commented out (an optional one such as [oidc] is shown that way).
SECTION = re.compile(r"^(#\s*)?\[(?P<name>[^\]]+)\]\s*$")
# An array of tables ([[webhooks]]), also commented out: its keys are "webhooks.*.key".
ARRAY = re.compile(r"^(#\s*)?\[\[(?P<name>[^\]]+)\]\]\s*$")
KEY = re.compile(r"^(?P<commented>#\s*)?(?P<key>[a-z_]+)\s*=\s*(?P<value>.*)$")
# Keys whose example value is deliberately not the default.
NOT_DEFAULT = {"gateway_id"}  # required: it has no default


def documented(path: Path) -> tuple[set[str], set[str]]:
    """(keys set, keys only commented out), each as "section.key" ("key" at top level)."""
    active: set[str] = set()
    commented: set[str] = set()
    section = ""
    for line in path.read_text().splitlines():
        if m := ARRAY.match(line):
            section = f"{m['name']}.*"
            continue
        if m := SECTION.match(line):
            name = m["name"]
            section = "rules.*" if name.startswith("rules.") else name
            section = "oidc.groups.*" if name.startswith("oidc.groups.") else section
            continue
        if m := KEY.match(line):
            key = f"{section}.{m['key']}" if section else m["key"]
            (commented if m["commented"] else active).add(key)
    return active, commented - active


def model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf key of a config model -> its default."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = get_args(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= model_keys(ann, f"{prefix}{name}.")
        elif type(None) in args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            keys |= model_keys(args[0], f"{prefix}{name}.")  # an optional table: Section | None
        elif args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            keys |= model_keys(args[-1], f"{prefix}{name}.*.")  # dict[str, Section]
        else:
            keys[prefix + name] = field.get_default(call_default_factory=True)
    return keys


CASES = [("agent.toml", AgentConfig), ("hub.toml", HubSettings)]


@pytest.fixture(autouse=True)
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("EDGE_AGENT_", "EDGE_HUB_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("name", "model"), CASES)
def test_example_loads(name: str, model: type[FileSettings]) -> None:
    load_settings(model, REPO / "deploy" / name)


@pytest.mark.parametrize(("name", "model"), CASES)
def test_example_names_every_key(name: str, model: type[FileSettings]) -> None:
    active, commented = documented(REPO / "deploy" / name)
    missing = set(model_keys(model)) - active - commented
    assert not missing, f"deploy/{name} does not document {sorted(missing)}"
    unknown = (active | commented) - set(model_keys(model))
    assert not unknown, f"deploy/{name} documents keys the model lacks: {sorted(unknown)}"


@pytest.mark.parametrize(("name", "model"), CASES)
def test_example_values_are_the_defaults(name: str, model: type[FileSettings]) -> None:
    loaded = load_settings(model, REPO / "deploy" / name)
    active, _ = documented(REPO / "deploy" / name)
    for key, default in model_keys(model).items():
        if key not in active or key in NOT_DEFAULT or "*" in key:
            continue
        value: Any = loaded
        for part in key.split("."):
            value = getattr(value, part)
        assert value == default, f"deploy/{name}: {key} = {value!r}, the default is {default!r}"

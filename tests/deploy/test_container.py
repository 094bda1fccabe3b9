"""deploy/Dockerfile and deploy/compose.yaml, checked without a container engine.

What is checked here: compose names the three central services and builds each from a
stage the Dockerfile has; every runtime stage runs as a non-root user; every path the
Dockerfile copies from the repository exists; and the environment compose gives the hub
is a valid configuration on top of deploy/hub.toml. Building and running the images needs
Docker with BuildKit and is not part of `just test`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.stack import REPO
from hub.config import HubSettings
from shared.config import load_settings

DOCKERFILE = REPO / "deploy" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"


def stages() -> dict[str, list[str]]:
    """Stage name -> its instruction lines (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", line, re.I):
            current = result.setdefault(m[1], [])
        elif current is not None:
            current.append(line)
    return result


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_the_central_side() -> None:
    services = compose()["services"]
    assert set(services) == {"hub", "anomaly-detector", "mosquitto"}
    have = stages()
    for name, service in services.items():
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] in have, name
        assert service["cap_drop"] == ["ALL"], name


@pytest.mark.parametrize("stage", ["hub", "anomaly-detector", "mosquitto"])
def test_runtime_stages_are_not_root(stage: str) -> None:
    users = [line.split()[1] for line in stages()[stage] if line.upper().startswith("USER ")]
    assert users, f"stage {stage} has no USER"
    assert users[-1] not in {"root", "0", "0:0"}


def test_dockerfile_copies_what_exists() -> None:
    for lines in stages().values():
        for line in lines:
            if not line.upper().startswith("COPY ") or "--from=" in line:
                continue
            sources = line.split()[1:-1]
            for source in sources:
                if source.endswith("*"):  # optional globs, e.g. Cargo.lock*
                    continue
                assert (REPO / source).exists(), line
    assert "maturin build" in " ".join(stages()["build"])


def test_hub_environment_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose()["services"]["hub"]["environment"]
    for key, value in env.items():
        assert key.startswith("EDGE_HUB_")
        monkeypatch.setenv(key, value)
    settings = load_settings(HubSettings, REPO / "deploy" / "hub.toml")
    assert settings.listen == "0.0.0.0:8080"
    assert settings.anomaly_url == "http://anomaly-detector:3001"
    assert settings.database_path == "/var/lib/edge-hub/hub.db"
    volumes = compose()["services"]["hub"]["volumes"]
    assert any(v.endswith(":/var/lib/edge-hub") for v in volumes)


def test_hub_image_default_command_is_serve() -> None:
    hub = " ".join(stages()["hub"])
    assert 'ENTRYPOINT ["edge-hub"]' in hub and 'CMD ["serve"]' in hub
    assert "EDGE_HUB_CONFIG=/etc/edge-hub/hub.toml" in hub
    assert Path(REPO / "deploy" / "hub.toml").exists()

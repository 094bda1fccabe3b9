"""deploy/*.service: `systemd-analyze verify` clean, hardened, and consistent with the programs.

`systemd-analyze verify` checks that ExecStart's binary exists, so each unit is verified from
a temp copy whose ExecStart points at this checkout's real binaries (the venv's edge-agent
and edge-hub, target/*/anomaly-detector) instead of the install paths under /opt and
/usr/local. Nothing else in the copy changes. verify exits 0 on unknown keys and bad values
(it only warns), so any output at all fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig, BufferConfig
from devtools.stack import REPO, detector_binary
from hub.cli import DRAIN_S
from hub.config import HubSettings

DEPLOY = REPO / "deploy"
UNITS = ["edge-agent.service", "edge-hub.service", "anomaly-detector.service"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
if not Path(SYSTEMD_ANALYZE).exists():  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail("systemd-analyze is required: apt-get install systemd", pytrace=False)

INSTALLED = {
    "/opt/factory-edge/bin/": str(Path(sys.executable).parent) + "/",
    "/usr/local/bin/anomaly-detector": str(detector_binary()),
}


def directives(unit: str) -> dict[str, list[str]]:
    """Key -> every value it has in the unit (some keys, e.g. SystemCallFilter, repeat)."""
    found: dict[str, list[str]] = {}
    for raw in (DEPLOY / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def one(unit: str, key: str) -> str:
    values = directives(unit)[key]
    assert len(values) == 1, (unit, key, values)
    return values[0]


def seconds(value: str) -> float:
    assert value.isdigit(), f"expected plain seconds, got {value!r}"
    return float(value)


def local_copy(unit: str, tmp_path: Path) -> Path:
    text = (DEPLOY / unit).read_text()
    for installed, here in INSTALLED.items():
        text = text.replace(installed, here)
    path = tmp_path / unit
    path.write_text(text)
    return path


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(local_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_exposure_is_low(unit: str, tmp_path: Path) -> None:
    # systemd's own score of the sandbox: 0 = fully locked down, 10 = unprotected.
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", str(local_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    score = float(last.split(":")[1].split()[0])
    assert score <= 2.0, result.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_hardening(unit: str) -> None:
    d = directives(unit)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
    }.items():
        assert d.get(key) == [value], (unit, key)
    assert "@system-service" in d["SystemCallFilter"]
    assert "AF_INET" in one(unit, "RestrictAddressFamilies").split()
    assert "User" in d or d.get("DynamicUser") == ["yes"]


def test_agent_unit_matches_the_agent() -> None:
    unit = "edge-agent.service"
    assert one(unit, "Type") == "notify"
    assert seconds(one(unit, "WatchdogSec")) >= 10
    # The agent needs AF_UNIX for the notify socket.
    assert "AF_UNIX" in one(unit, "RestrictAddressFamilies").split()
    # A clean stop (shutdown_timeout_s, then closing the buffer) fits in TimeoutStopSec.
    grace = AgentConfig.model_fields["shutdown_timeout_s"].default
    assert seconds(one(unit, "TimeoutStopSec")) >= grace + 5
    # Pings stop once shutdown starts; the shutdown grace must not look like a hang.
    assert seconds(one(unit, "WatchdogSec")) > grace
    # The default buffer path lies in the unit's StateDirectory (the only writable place).
    state = one(unit, "StateDirectory")
    assert BufferConfig().path.startswith(f"/var/lib/{state}/")
    assert one(unit, "ExecStart").split()[1:] == ["run", "--config", "/etc/edge-agent/agent.toml"]


def test_hub_unit_matches_the_hub() -> None:
    unit = "edge-hub.service"
    assert seconds(one(unit, "TimeoutStopSec")) >= DRAIN_S + 5
    state = one(unit, "StateDirectory")
    assert HubSettings.model_fields["database"].default == f"sqlite:////var/lib/{state}/hub.db"
    assert one(unit, "ExecStart").split()[1:] == ["serve", "--config", "/etc/edge-hub/hub.toml"]
    assert "anomaly-detector.service" in one(unit, "After").split()

"""[hub] ca_file / client_cert / client_key: checked when agent.toml loads, with a message
naming the key (the HTTPS sync itself runs through nginx in tests/deploy/test_nginx.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from agent.config import AgentConfig
from agent.tls import hub_ssl_context
from shared.config import ConfigError, load_settings


def _load(tmp_path: Path, hub: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(f'gateway_id = "gw-01"\n[hub]\n{hub}\n')
    return load_settings(AgentConfig, path)


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("gw-01")
    out = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "c.pem", "key": tmp_path / "k.pem"}
    ca.cert_pem.write_to_path(str(out["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(out["cert"]))
    cert.private_key_pem.write_to_path(str(out["key"]))
    return out


def test_a_full_tls_section_loads_and_builds_a_verifying_context(
    tmp_path: Path, pems: dict[str, Path]
) -> None:
    cfg = _load(
        tmp_path,
        f'url = "https://hub.plant:443"\nca_file = "{pems["ca"]}"\n'
        f'client_cert = "{pems["cert"]}"\nclient_key = "{pems["key"]}"',
    )
    ctx = hub_ssl_context(cfg.hub)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ('url = "https://h"\nca_file = "/nonexistent/ca.pem"', "ca_file"),
        ('url = "http://h"\nca_file = "{ca}"', "https://"),
        ('url = "https://h"\nclient_cert = "{cert}"', "go together"),
        ('url = "https://h"\nca_file = "{key}"', "ca_file"),
        ('url = "https://h"\nclient_cert = "{ca}"\nclient_key = "{key}"', "client_cert"),
    ],
)
def test_bad_tls_settings_fail_at_load_naming_the_key(
    tmp_path: Path, pems: dict[str, Path], hub: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, hub.format(**{k: str(v) for k, v in pems.items()}))

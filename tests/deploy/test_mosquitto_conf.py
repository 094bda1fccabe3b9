"""deploy/mosquitto.conf runs in a real mosquitto: logins required on both listeners, TLS on
the plant-network one, and the delivery settings the agent depends on.

The test runs a temp copy whose file paths point at certificates made by trustme, a
password file made by ``mosquitto_passwd -b`` and a temp persistence directory, and whose
ports are free loopback ports; every other line is the shipped one.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from agent.config import MqttConfig
from devtools.stack import REPO, Proc, free_port, mosquitto_path, port_open, wait_for

CONF = REPO / "deploy" / "mosquitto.conf"
MOSQUITTO = mosquitto_path()
TOOLS = {
    name: shutil.which(name) for name in ("mosquitto_passwd", "mosquitto_pub", "mosquitto_sub")
}
if MOSQUITTO is None or None in TOOLS.values():  # pragma: no cover - CI installs them (.ci/run)
    pytest.fail("needs mosquitto and mosquitto-clients (apt-get install ...)", pytrace=False)


def tool(name: str) -> str:
    path = TOOLS[name]
    assert path is not None
    return path


@dataclass
class Running:
    plain: int
    tls: int
    ca: Path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Running]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in (("gw-01", "agent-secret"), ("sensor", "sensor-secret")):
        subprocess.run(
            [tool("mosquitto_passwd"), "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    (tmp_path / "data").mkdir()
    plain, tls = free_port(), free_port()
    text = CONF.read_text()
    for installed, here in {
        "/etc/mosquitto/passwd": str(passwd),
        "/etc/mosquitto/certs/": f"{certs}/",
        "/var/lib/mosquitto/": f"{tmp_path / 'data'}/",
        "listener 1883 127.0.0.1": f"listener {plain} 127.0.0.1",
        "listener 8883": f"listener {tls} 127.0.0.1",
    }.items():
        assert installed in text
        text = text.replace(installed, here)
    # As root, mosquitto would switch to user "mosquitto", who cannot read the temp dir.
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\nlog_dest stderr\n{text}")
    proc = Proc("mosquitto", [str(MOSQUITTO), "-c", str(conf)], tmp_path)
    proc.start()
    try:
        wait_for("both listeners", lambda: port_open(plain) and port_open(tls), timeout=10)
        yield Running(plain, tls, certs / "ca.pem")
    finally:
        proc.stop()


def pub(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            tool("mosquitto_pub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-t",
            "factory/l1/m1/temp",
            "-m",
            "21.5",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_logins_and_tls(broker: Running) -> None:
    # The agent's view: a persistent QoS 1 subscription with its login on loopback.
    sub = subprocess.Popen(
        [
            tool("mosquitto_sub"),
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.plain),
            "-q",
            "1",
            "-u",
            "gw-01",
            "-P",
            "agent-secret",
            "-i",
            "edge-agent-gw-01",
            "-c",
            "-t",
            "factory/#",
            "-C",
            "1",
            "-W",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # No login, wrong password, or plain MQTT on the TLS port: refused.
        assert pub(broker.plain).returncode != 0
        assert pub(broker.plain, "-u", "sensor", "-P", "wrong").returncode != 0
        assert pub(broker.tls, "-u", "sensor", "-P", "sensor-secret").returncode != 0
        assert pub(broker.tls, "--cafile", str(broker.ca)).returncode != 0
        # A sensor over TLS with its login gets through, and the agent receives it.
        ok = pub(broker.tls, "--cafile", str(broker.ca), "-u", "sensor", "-P", "sensor-secret")
        assert ok.returncode == 0, ok.stderr
        out, err = sub.communicate(timeout=30)
        assert sub.returncode == 0, err
        assert out.strip() == "21.5"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def test_delivery_settings_fit_the_agent() -> None:
    settings = dict(
        re.findall(
            r"^(max_inflight_messages|max_queued_messages|max_queued_bytes|persistence)"
            r" (\S+)$",
            CONF.read_text(),
            re.M,
        )
    )
    assert settings["persistence"] == "true"
    # A whole commit batch must be able to be in flight at once.
    assert int(settings["max_inflight_messages"]) >= MqttConfig().batch_max
    # A stopped agent's session queue is bounded by bytes, not cut at mosquitto's 1000.
    assert settings["max_queued_messages"] == "0"
    assert int(settings["max_queued_bytes"]) > 0

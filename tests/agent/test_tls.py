"""MQTT over TLS with a password and a client certificate, against a real mosquitto.

Certificates come from trustme (a throwaway CA), the password file from
``mosquitto_passwd -b``; the agent is the real process, configured through EDGE_AGENT_MQTT__*
variables as an EnvironmentFile would set them.
"""

from __future__ import annotations

import getpass
import shutil
import ssl
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import trustme
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig
from devtools.stack import Agent, Proc, free_port, mosquitto_path, port_open, wait_for
from shared.config import ConfigError, load_settings

MOSQUITTO = mosquitto_path()
PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
if MOSQUITTO is None:  # pragma: no cover - CI installs it (.ci/run)
    pytest.fail("mosquitto is required: apt-get install mosquitto", pytrace=False)


@dataclass
class TlsBroker:
    port: int
    ca: Path
    client_cert: Path
    client_key: Path
    proc: Proc


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("gw-01")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    passwd = tmp_path / "passwd"
    subprocess.run(
        [PASSWD, "-c", "-b", str(passwd), "gw-01", "s3cret"], check=True, capture_output=True
    )
    port = free_port()
    conf = tmp_path / "mosquitto-tls.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            # Run as root (containers, CI), mosquitto would switch to user "mosquitto",
            # which cannot read the test's private temp dir; as anyone else this is a no-op.
            user {getpass.getuser()}
            listener {port} 127.0.0.1
            cafile {tmp_path / "ca.pem"}
            certfile {tmp_path / "server.pem"}
            keyfile {tmp_path / "server.key"}
            require_certificate true
            allow_anonymous false
            password_file {passwd}
            max_inflight_messages 1000
            log_dest stderr
            log_type all
            """
        )
    )
    proc = Proc("mosquitto-tls", [str(MOSQUITTO), "-c", str(conf)], tmp_path)
    proc.start()
    try:
        wait_for("mosquitto TLS listener", lambda: port_open(port), timeout=10)
        yield TlsBroker(
            port, tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key", proc
        )
    finally:
        proc.stop()


def tls_agent(tmp_path: Path, broker: TlsBroker, **env: str) -> Agent:
    agent = Agent(
        tmp_path,
        gateway_id="gw-01",
        mqtt_port=broker.port,
        hub_url="http://127.0.0.1:9",  # no hub needed: the reading only has to reach the buffer
        token="feg_unused",
    )
    agent.proc.env = {
        "EDGE_AGENT_MQTT__TLS": "true",
        "EDGE_AGENT_MQTT__TLS_CA": str(broker.ca),
        "EDGE_AGENT_MQTT__TLS_CERT": str(broker.client_cert),
        "EDGE_AGENT_MQTT__TLS_KEY": str(broker.client_key),
        "EDGE_AGENT_MQTT__USERNAME": "gw-01",
        "EDGE_AGENT_MQTT__PASSWORD": "s3cret",
        **env,
    }
    return agent


def publish_tls(broker: TlsBroker, topic: str, payload: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-publisher")
    client.tls_set(
        ca_certs=str(broker.ca),
        certfile=str(broker.client_cert),
        keyfile=str(broker.client_key),
        cert_reqs=ssl.CERT_REQUIRED,
    )
    client.username_pw_set("gw-01", "s3cret")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_agent_subscribes_and_stores_over_tls(tmp_path: Path, tls_broker: TlsBroker) -> None:
    agent = tls_agent(tmp_path, tls_broker)
    try:
        agent.start()  # waits until subscribed
        publish_tls(tls_broker, "factory/l1/m1/temp", '{"value": 21.5}')
        wait_for("the reading in the buffer", lambda: agent.status()["backlog"] == 1, timeout=15)
        assert agent.stop() == 0
    finally:
        agent.stop()


def test_wrong_password_is_refused(tmp_path: Path, tls_broker: TlsBroker) -> None:
    agent = tls_agent(tmp_path, tls_broker, EDGE_AGENT_MQTT__PASSWORD="wrong")
    try:
        agent.start(wait_subscribed=False)
        wait_for(
            "the broker to refuse the agent",
            lambda: "not authorised" in tls_broker.proc.log_path.read_text().lower(),
            timeout=15,
        )
        assert not agent.status()["mqtt"]["connected"]
    finally:
        agent.stop()


def test_broker_certificate_from_another_ca_is_refused(
    tmp_path: Path, tls_broker: TlsBroker
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    agent = tls_agent(tmp_path, tls_broker, EDGE_AGENT_MQTT__TLS_CA=str(other_ca))
    try:
        agent.start(wait_subscribed=False)
        wait_for(
            "the agent to reject the broker's certificate",
            lambda: "certificate verify failed" in agent.proc.log_path.read_text(),
            timeout=15,
        )
        assert not agent.status()["mqtt"]["connected"]
    finally:
        agent.stop()


def test_no_tls_against_a_tls_listener_is_not_connected(
    tmp_path: Path, tls_broker: TlsBroker
) -> None:
    # TLS is off by default: a plain client does not get through a TLS-only listener.
    agent = tls_agent(
        tmp_path,
        tls_broker,
        EDGE_AGENT_MQTT__TLS="false",
        EDGE_AGENT_MQTT__TLS_CA="",
        EDGE_AGENT_MQTT__TLS_CERT="",
        EDGE_AGENT_MQTT__TLS_KEY="",
    )
    try:
        agent.start(wait_subscribed=False)
        wait_for(
            "the broker to see a non-TLS client",
            lambda: "wrong version number" in tls_broker.proc.log_path.read_text(),
            timeout=15,
        )
        assert not agent.status()["mqtt"]["connected"]
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"tls_ca": "/etc/hostname"}, "tls_ca needs tls = true"),
        ({"tls_insecure": True}, "tls_insecure needs tls = true"),
        ({"tls": True, "tls_cert": "/etc/hostname"}, "tls_cert and tls_key go together"),
        ({"tls": True, "tls_ca": "/nonexistent/ca.pem"}, "tls_ca '/nonexistent/ca.pem' does not"),
    ],
)
def test_tls_config_errors(tmp_path: Path, mqtt: dict[str, object], message: str) -> None:
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in mqtt.items()]
    path = tmp_path / "agent.toml"
    path.write_text('gateway_id = "gw-01"\n[mqtt]\n' + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(AgentConfig, path)
    assert "mqtt" in str(err.value) and message in str(err.value)


def test_tls_defaults_are_off() -> None:
    m = AgentConfig(gateway_id="gw-01").mqtt
    assert (m.tls, m.tls_ca, m.tls_cert, m.tls_key, m.tls_insecure) == (
        False,
        None,
        None,
        None,
        False,
    )

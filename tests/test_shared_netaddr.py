"""HOST:PORT and the ts window bounds: one rule for hub.toml and agent.toml."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from hub.config import HubSettings
from shared.netaddr import HostPort, parse_host_port
from shared.payload import TsWindow, window_from_limits


def _hub(**kw: object) -> HubSettings:
    return HubSettings.model_validate(kw)


def _agent(**kw: object) -> AgentConfig:
    return AgentConfig.model_validate({"gateway_id": "gw", **kw})


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("127.0.0.1:8080", HostPort("127.0.0.1", 8080)),
        ("localhost:1", HostPort("localhost", 1)),
        ("[::1]:65535", HostPort("::1", 65535)),
        ("0.0.0.0:9108", HostPort("0.0.0.0", 9108)),
    ],
)
def test_good_addresses(value: str, want: HostPort) -> None:
    assert parse_host_port(value) == want
    assert _hub(listen=value).listen == value
    assert _agent(metrics={"listen": value}).metrics.listen == value


@pytest.mark.parametrize("value", ["8080", ":8080", "host:", "host:x", "host:65536", "h:-1"])
def test_bad_addresses(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port(value)
    with pytest.raises(ValueError, match="listen must be HOST:PORT"):
        _hub(listen=value)
    with pytest.raises(ValueError, match="listen must be HOST:PORT"):
        _agent(metrics={"listen": value})


def test_port_zero_is_only_for_listeners_that_log_their_port() -> None:
    assert parse_host_port("127.0.0.1:0", allow_port_zero=True).port == 0
    with pytest.raises(ValueError):
        parse_host_port("127.0.0.1:0")
    with pytest.raises(ValueError):
        _hub(listen="127.0.0.1:0")
    assert _agent(metrics={"listen": "127.0.0.1:0"}).metrics.listen


def test_zero_means_no_bound_on_both_sides() -> None:
    assert window_from_limits(0, 0) == TsWindow()
    assert window_from_limits(5, 0) == TsWindow(5.0, None)
    hub = _hub(max_future_s=0, max_past_s=60)
    agent = _agent(ingest={"max_future_s": 0, "max_past_s": 60})
    assert hub.ts_window() == agent.ingest.window() == TsWindow(None, 60.0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_window_bounds_are_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValueError):
        _hub(max_future_s=bad)
    with pytest.raises(ValueError):
        _agent(ingest={"max_past_s": bad})

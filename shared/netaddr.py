"""``HOST:PORT`` listen addresses, as hub.toml's ``listen`` and agent.toml's
``[metrics] listen`` write them: one parser, so both sides accept the same spellings.

The port is everything after the last ``:``, so an IPv6 host goes in brackets
(``[::1]:8080``); the host is returned without them, as socket APIs want it.
"""

from __future__ import annotations

from typing import NamedTuple


class HostPort(NamedTuple):
    host: str
    port: int


def parse_host_port(value: str, *, allow_port_zero: bool = False) -> HostPort:
    """``"127.0.0.1:8080"`` -> HostPort; ValueError naming the expected form otherwise.

    ``allow_port_zero``: port 0 asks the OS for a free port (tests, a listener whose port
    is logged at start)."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if allow_port_zero else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT with a port in {lowest}..65535")
    return HostPort(host.strip("[]"), int(port))

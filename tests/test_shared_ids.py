"""The gateway id rule, one for agent.toml, the hub's registry and the wire."""

from __future__ import annotations

import msgspec
import pytest

from agent.config import AgentConfig
from shared.config import ConfigError
from shared.ids import GATEWAY_ID_MAX_LEN, gateway_id_problem, validate_gateway_id
from shared.wire import WireError, decode_batch

GOOD = ["gw-01", "line.3_gw", "A", "x" * GATEWAY_ID_MAX_LEN]
BAD = ["", "gw@a", "gw:a", "gw a", "gw/1", "gw\n", "x" * (GATEWAY_ID_MAX_LEN + 1), "gé"]


@pytest.mark.parametrize("value", GOOD)
def test_good_ids_pass_everywhere(value: str) -> None:
    assert gateway_id_problem(value) is None
    assert validate_gateway_id(value) == value
    assert AgentConfig(gateway_id=value).gateway_id == value
    body = msgspec.json.encode({"gateway_id": value, "readings": []})
    assert decode_batch(body).gateway_id == value


@pytest.mark.parametrize("value", BAD)
def test_bad_ids_fail_everywhere(value: str) -> None:
    problem = gateway_id_problem(value)
    assert problem
    with pytest.raises(ValueError, match="gateway id"):
        validate_gateway_id(value)
    with pytest.raises((ValueError, ConfigError)):
        AgentConfig(gateway_id=value)
    body = msgspec.json.encode({"gateway_id": value, "readings": []})
    with pytest.raises(WireError) as info:
        decode_batch(body)
    assert info.value.details == [{"field": "gateway_id", "message": problem}]


def test_long_strings_are_judged_without_being_remembered() -> None:
    from shared import ids

    remembered = ids._chars_problem.cache_info().currsize
    for i in range(3):
        assert gateway_id_problem(f"gw-{i}" + "x" * 1_000_000) is not None
    assert ids._chars_problem.cache_info().currsize == remembered

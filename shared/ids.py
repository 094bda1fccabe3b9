"""Identifiers both sides must agree on.

A gateway id is named in agent.toml (``gateway_id``), registered at the hub
(``edge-hub gateway add ID``) and carried in every sync batch. All three check it with
:func:`validate_gateway_id`, so the hub cannot register an id that no agent.toml could
name, and a batch cannot carry one the hub could never have registered.
"""

from __future__ import annotations

import functools
import re
from typing import Final

GATEWAY_ID_MAX_LEN: Final = 128
GATEWAY_ID_CHARS: Final = "letters, digits, '.', '_' and '-'"
GATEWAY_ID_PATTERN: Final = rf"^[A-Za-z0-9._-]{{1,{GATEWAY_ID_MAX_LEN}}}$"
_GATEWAY_ID: Final = re.compile(GATEWAY_ID_PATTERN)


def gateway_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid gateway id, or None when it is."""
    if not 1 <= len(value) <= GATEWAY_ID_MAX_LEN:
        return f"must be 1-{GATEWAY_ID_MAX_LEN} characters"
    return _chars_problem(value)


# Every batch names its gateway: the verdicts on the ids seen lately are kept (of ids short
# enough to be one, so a flood of long strings cannot fill memory).
@functools.lru_cache(maxsize=4096)
def _chars_problem(value: str) -> str | None:
    # fullmatch, not match: "$" would also accept a trailing newline.
    if not _GATEWAY_ID.fullmatch(value):
        return f"may hold only {GATEWAY_ID_CHARS}"
    return None


def validate_gateway_id(value: str) -> str:
    """``value`` when it is a valid gateway id; ValueError saying why otherwise."""
    problem = gateway_id_problem(value)
    if problem is not None:
        raise ValueError(f"gateway id {value!r} {problem}")
    return value

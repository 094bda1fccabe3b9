"""What a sensor key may be: ``line/machine/sensor``, three printable, non-blank segments.

One rule for both ends: the agent applies it where a topic becomes a key (shared.topics),
so a bad topic is a dead letter at the gateway; the hub applies it to every key of a batch
(shared.wire via :func:`split_key`), so a gateway that skips the check still cannot create
a sensor named ``"\\x00"``, ``"a\\r\\nb"`` or ``"   "``. Such keys break logs, CSV exports
and the console, and a key that differs from another only by invisible characters makes
two sensors that look like one. For the same reason both ends bring a key to Unicode NFC
(:func:`shared.text.nfc`) before they use it: ``café`` typed either way is one sensor.
"""

from __future__ import annotations

import functools

from shared.text import hidden_char

SEGMENTS = ("line", "machine", "sensor")
# Per segment, in characters. MQTT allows 64 KiB topics; a factory's names are short, and
# the bound keeps one sensor listing from growing by megabytes per key.
MAX_SEGMENT_LEN = 128


class SensorKeyError(ValueError):
    """Why a key (or one segment of it) is not a valid sensor key."""


def segment_problem(name: str, value: str) -> str | None:
    """What is wrong with one segment (``name`` is line, machine or sensor), or None."""
    if not value:
        return f"{name} is empty"
    if not value.strip():
        return f"{name} {value!r} is only whitespace"
    if value != value.strip():
        return f"{name} {value!r} starts or ends with whitespace"
    if len(value) > MAX_SEGMENT_LEN:
        return f"{name} is longer than {MAX_SEGMENT_LEN} characters"
    bad = hidden_char(value)
    if bad is not None:
        return f"{name} {value!r} contains the control or invisible character {bad}"
    return None


# Keys seen lately, with their verdicts: a gateway sends the same few keys in every batch,
# and checking each one again was a few percent of the hub's CPU per request. Only keys
# short enough to be valid are kept, so that the memory held stays a few megabytes whatever
# a client sends.
KEYS_REMEMBERED = 65_536
_LONGEST_KEY = len(SEGMENTS) * (MAX_SEGMENT_LEN + 1)


def key_problem(key: str) -> str | None:
    """What is wrong with ``key``, or None when it is a valid ``line/machine/sensor``."""
    if not isinstance(key, str):
        return f"sensor key must be a string, got {type(key).__name__}"
    if len(key) > _LONGEST_KEY:
        return _str_key_problem.__wrapped__(key)
    return _str_key_problem(key)


@functools.lru_cache(maxsize=KEYS_REMEMBERED)
def _str_key_problem(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) != len(SEGMENTS):
        return f"sensor key {key!r} is not line/machine/sensor"
    for name, part in zip(SEGMENTS, parts, strict=True):
        problem = segment_problem(name, part)
        if problem is not None:
            return f"sensor key {key!r}: {problem}"
    return None


def split_key(key: str) -> tuple[str, str, str]:
    """``line/machine/sensor`` -> its three parts, or SensorKeyError saying what is wrong."""
    problem = key_problem(key)
    if problem is not None:
        raise SensorKeyError(problem)
    line, machine, sensor = key.split("/")
    return line, machine, sensor

"""MQTT payload -> readings, or the reason it belongs in the dead-letter table.

Accepted forms (README.md, "MQTT payloads"):

* a JSON object ``{"value": 23.5, "ts": 1732270000.123, "unit": "C"}`` (``ts`` and ``unit``
  optional; ``ts`` epoch seconds or RFC 3339),
* a JSON array of such objects,
* a bare JSON number, or a plain-text number (``23.5``).

Without ``ts`` a reading takes the time the agent received it. A message is all or nothing:
one bad element in an array dead-letters the whole message, so a publisher never gets half of
a batch stored without noticing.

A ``ts`` outside a window around the time of receipt (:class:`TsWindow`) is rejected too: a
sensor whose clock reset to 1970 or jumped a year ahead would otherwise write readings where
no query looks for them, and skew every series and threshold alert it touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec
from pydantic import Field

from shared.timeutil import parse_ts, to_rfc3339
from shared.values import value_problem

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
MAX_READINGS_PER_MESSAGE = 10_000
MAX_UNIT_LEN = 32
_KNOWN_KEYS = frozenset({"value", "ts", "unit"})


class PayloadError(ValueError):
    """Why a payload was rejected; the message is the dead-letter reason."""


@dataclass(frozen=True, slots=True)
class TsWindow:
    """How far a reading's ``ts`` may lie after / before the time it was received (seconds).
    ``None``: no bound on that side."""

    max_future_s: float | None = None
    max_past_s: float | None = None

    def problem(self, ts: float, now: float, against: str = "the time received") -> str | None:
        if self.max_future_s is not None and ts > now + self.max_future_s:
            return (
                f"ts {_when(ts)} is {ts - now:.0f} s ahead of {against} "
                f"(max_future_s = {self.max_future_s:g}); is a clock wrong?"
            )
        if self.max_past_s is not None and ts < now - self.max_past_s:
            return (
                f"ts {_when(ts)} is {now - ts:.0f} s before {against} "
                f"(max_past_s = {self.max_past_s:g}); is a clock wrong?"
            )
        return None


NO_WINDOW = TsWindow()

# A window bound in a config file (``max_future_s``, ``max_past_s``): seconds, 0 = no bound.
WindowSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def window_from_limits(max_future_s: float, max_past_s: float) -> TsWindow:
    """The window two config keys describe; 0 on a side means no bound there."""
    return TsWindow(max_future_s or None, max_past_s or None)


def _when(ts: float) -> str:
    # A ts past year 9999 (1e16, 1e308: valid JSON numbers) has no calendar date.
    try:
        return to_rfc3339(ts)
    except (OverflowError, ValueError, OSError):
        return f"{ts:g}"


@dataclass(frozen=True, slots=True)
class Parsed:
    value: float
    ts: float
    unit: str | None = None


def _number(raw: object, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError(f"{what} must be a number, got {type(raw).__name__}")
    try:
        value = float(raw)
    except OverflowError:
        raise PayloadError(f"{what} is out of range") from None
    if not math.isfinite(value):
        raise PayloadError(f"{what} is not finite")
    problem = value_problem(value)
    if problem is not None:
        # The hub refuses such a value too: one in a rollup bucket overflows its sum.
        raise PayloadError(f"{what} {problem}")
    return value


def _reading(obj: object, received_at: float, where: str, window: TsWindow) -> Parsed:
    if not isinstance(obj, dict):
        if isinstance(obj, int | float) and not isinstance(obj, bool):
            return Parsed(_number(obj, f"{where}value"), received_at)
        raise PayloadError(f"{where}expected an object with 'value', got {type(obj).__name__}")
    if "value" not in obj:
        raise PayloadError(f"{where}object has no 'value'")
    unknown = obj.keys() - _KNOWN_KEYS
    if unknown:
        raise PayloadError(f"{where}unknown keys {sorted(unknown)}")
    value = _number(obj["value"], f"{where}value")
    raw_ts = obj.get("ts")
    try:
        ts = received_at if raw_ts is None else parse_ts(raw_ts)
    except ValueError as exc:
        raise PayloadError(f"{where}{exc}") from None
    outside = window.problem(ts, received_at)
    if outside:
        raise PayloadError(f"{where}{outside}")
    unit = obj.get("unit")
    if unit is not None and (not isinstance(unit, str) or len(unit) > MAX_UNIT_LEN):
        raise PayloadError(f"{where}unit must be a string of at most {MAX_UNIT_LEN} characters")
    return Parsed(value, ts, unit)


def parse_payload(
    payload: bytes,
    received_at: float,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    window: TsWindow = NO_WINDOW,
) -> list[Parsed]:
    """Parse one MQTT payload into readings; raise PayloadError with the reason otherwise."""
    if len(payload) > max_bytes:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    text = payload.strip()
    if not text:
        raise PayloadError("empty payload")
    try:
        doc = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        # Not JSON: the plain-text number form ("23.5"); float() also takes "nan"/"inf",
        # which _number rejects as not finite.
        try:
            number = float(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PayloadError(f"not JSON and not a number: {exc}") from None
        return [Parsed(_number(number, "value"), received_at)]
    if isinstance(doc, list):
        if not doc:
            raise PayloadError("empty array")
        if len(doc) > MAX_READINGS_PER_MESSAGE:
            raise PayloadError(f"array of {len(doc)} readings exceeds {MAX_READINGS_PER_MESSAGE}")
        return [_reading(item, received_at, f"[{i}]: ", window) for i, item in enumerate(doc)]
    return [_reading(doc, received_at, "", window)]

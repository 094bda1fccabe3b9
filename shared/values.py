"""How large a reading may be: one bound for both ends, and for the limits set on readings.

A float64 holds up to about 1.8e308, but two such readings in one minute overflow the sum
that every rollup bucket keeps (``1e308 + 1e308`` is ``inf``; ``inf + -inf`` is no number
at all), and the hub could no longer store that bucket. No sensor measures anything near
1e15 in any unit, and at that size a float64 still counts whole units exactly (up to 2^53),
so sums of any real number of readings stay finite and exact enough.

The agent turns a larger value into a dead letter (or, for a Sparkplug B metric, a counted
skip); the hub answers 422 naming the reading; thresholds and alert rules are bounded alike.
"""

from __future__ import annotations

import math

MAX_ABS_VALUE = 1e15


def value_problem(value: float) -> str | None:
    """Why ``value`` cannot be a reading (or a limit on one), or None. Reads after the
    field's name: ``f"value {problem}"``."""
    if not math.isfinite(value):
        return "must be a finite number"
    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
        return f"must be within ±{MAX_ABS_VALUE:g} (got {value:g})"
    return None


def all_in_range(values: list[float]) -> bool:
    """True when every value passes :func:`value_problem` (NaN fails any comparison)."""
    if not values:
        return True
    lo, hi = min(values), max(values)
    return lo >= -MAX_ABS_VALUE and hi <= MAX_ABS_VALUE and math.isfinite(sum(values))

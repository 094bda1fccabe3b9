"""``series?points=N``: the hub picks the bucket, so a chart asks for what it can draw.

The bucket is the smallest "round" width (1 s, 2 s, 5 s, ..., 1 min, 5 min, ..., 1 h, 6 h,
1 d, 7 d, then whole weeks) for which the range falls into at most N epoch-aligned buckets.
From one minute up every candidate is a whole number of minutes or hours, so the answer
comes from the rollup tiers (hub.storage.rollups) whatever the depth of the range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hub.errors import bad_param
from hub.storage import Storage

MAX_POINTS = 100_000
WEEK_S = 7 * 86400.0
NICE_S = (
    *(m * 10.0**e for e in range(-3, 1) for m in (1, 2, 5)),  # 1 ms ... 5 s
    10.0, 15.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 10800.0, 21600.0, 43200.0,
    86400.0, 2 * 86400.0, WEEK_S,
)  # fmt: skip


def parse_points(params: Mapping[str, str]) -> int | None:
    raw = params.get("points")
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) < 10) or not (
        1 <= int(text) <= MAX_POINTS
    ):
        raise bad_param("points", f"must be an integer from 1 to {MAX_POINTS}, got {raw!r}")
    if (params.get("bucket") or "").strip():
        raise bad_param("points", "give either bucket or points, not both")
    return int(text)


def buckets_spanned(lo: float, hi: float, width: float) -> int:
    """How many epoch-aligned buckets of ``width`` [lo, hi] touches."""
    return math.floor(hi / width) - math.floor(lo / width) + 1


def pick_bucket(lo: float, hi: float, points: int) -> float:
    """The smallest round width that covers [lo, hi] in at most ``points`` buckets."""
    for width in NICE_S:
        if buckets_spanned(lo, hi, width) <= points:
            return width
    weeks = max(1, math.ceil((hi - lo) / WEEK_S / points))
    while buckets_spanned(lo, hi, weeks * WEEK_S) > points:
        weeks += 1
    return weeks * WEEK_S


def points_bucket(
    storage: Storage, sensor_id: int, start: float | None, end: float | None, points: int
) -> float | None:
    """The bucket for ``points`` over [start, end); an open end is where the sensor's data
    ends. None: the range is open and the sensor has nothing stored."""
    lo, hi = start, end
    if lo is None or hi is None:
        span = storage.history_span(sensor_id)
        if span is None:
            return None
        lo = span[0] if lo is None else lo
        hi = span[1] if hi is None else hi
    return pick_bucket(lo, max(lo, hi), points)

"""Time helpers: every timestamp inside factory-edge is float epoch seconds (UTC)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def parse_ts(raw: object) -> float:
    """Epoch seconds (int/float) or an RFC 3339 string -> epoch seconds.

    Raises ValueError with a message fit for a dead-letter reason.
    """
    if isinstance(raw, bool):
        raise ValueError("ts must be epoch seconds or RFC 3339, got a boolean")
    if isinstance(raw, int | float):
        ts = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"ts {raw!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise ValueError(f"ts {raw!r} has no UTC offset")
        ts = parsed.timestamp()
    else:
        raise ValueError(f"ts must be epoch seconds or RFC 3339, got {type(raw).__name__}")
    if not math.isfinite(ts) or ts < 0:
        raise ValueError(f"ts {raw!r} is not a valid time")
    return ts


def to_rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )

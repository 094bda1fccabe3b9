"""What the tests send as the edge's alerts, and when: one constructor for the threshold alert
they all use, and a recent time to date what a running hub must not mark stale."""

from __future__ import annotations

import time

from shared.wire import WireAlert

# Whole hours back from now, a moment that keeps the position inside its hour and minute of
# the fixed 2023 instant (1_700_000_000) the tests used before: their buckets fall as they
# did. Recent, so that a running hub's alert watch never marks an alert opened there stale
# (active longer than [alarms] stale_after_s, a day) in the middle of a test.
RECENT_T0 = 1_700_000_000.0 + (time.time() - 3 * 3600 - 1_700_000_000.0) // 3600 * 3600


def threshold_alert(
    key: str,
    opened_at: float,
    *,
    alert_id: int = 1,
    severity: str = "medium",
    value: float = 90.0,
    threshold_value: float = 80.0,
    breach_type: str = "above_maximum",
    closed_at: float | None = None,
) -> WireAlert:
    """The edge's alert of ``key`` breaching a threshold (by default above 80 at 90)."""
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type=breach_type,
        severity=severity,
        threshold_value=threshold_value,
        value=value,
        opened_at=opened_at,
        closed_at=closed_at,
    )

"""The one severity scale of the fleet's alerts, and how the edge's grades map onto it.

An alert object's severity is one of the hub's alert-rule levels, ``info`` < ``warning`` <
``critical`` (lower case, as alert objects always carried them; rules are written in upper
case). The edge grades a threshold breach by how far past the threshold it is (``medium``,
``high``, ``critical``, threshold_checker's grades): those are mapped here, at the hub's
boundary, so that a threshold alert and a rule alert compare on one scale. ``critical``
stays critical and nothing else becomes critical: a grade below the threshold checker's
``critical`` (less than 20 % past the threshold) is a ``warning``. The edge's own record of
an alert (``GET /sensors/{id}/alerts``) keeps the grade the edge sent.
"""

from __future__ import annotations

SCALE: tuple[str, ...] = ("info", "warning", "critical")
# The edge's threshold grades that are not on the scale.
EDGE_GRADES = {"medium": "warning", "high": "warning"}
# Every name a severity may arrive with (edge grades, rule levels in any case).
NAMES: tuple[str, ...] = ("info", "medium", "warning", "high", "critical")


def on_scale(severity: str) -> str:
    """``severity`` (an edge grade, a rule level in any case, or a scale value) on the scale."""
    s = severity.strip().lower()
    return EDGE_GRADES.get(s, s)


def rank(severity: str | None) -> int:
    """Position on the scale (-1 for None or an unknown name): higher is more severe."""
    if severity is None:
        return -1
    s = on_scale(severity)
    return SCALE.index(s) if s in SCALE else -1

"""Prometheus counters of the Sparkplug host (registered by agent.metrics with the rest)."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter

SKIPPED = Counter(
    "edge_agent_sparkplug_metrics_skipped",
    "Sparkplug B metrics that became no reading, by reason (protocol, type_String, "
    "unknown_alias, before_birth, repeated_in_birth, ...).",
    ["reason"],
    registry=None,
)
EVENTS = Counter(
    "edge_agent_sparkplug_session_events",
    "Sparkplug B session events by kind (seq_gap, before_birth, unknown_alias, ndeath, "
    "ndeath_other_session, ddeath, rebirth_suppressed, ...).",
    ["event"],
    registry=None,
)
REBIRTHS = Counter(
    "edge_agent_sparkplug_rebirth_requests",
    "NCMD Node Control/Rebirth requests sent to edge nodes.",
    registry=None,
)
SPARKPLUG_METRICS = (SKIPPED, EVENTS, REBIRTHS)


class Exporter:
    """Carries the session's plain tallies over to the counters, once per batch rather than
    once per metric (the tallies are what the hot path touches)."""

    def __init__(self) -> None:
        self._skipped: Tally[str] = Tally()
        self._events: Tally[str] = Tally()
        self._rebirths = 0

    def export(self, skipped: Tally[str], events: Tally[str], rebirths: int) -> None:
        for tally, seen, counter in (
            (skipped, self._skipped, SKIPPED),
            (events, self._events, EVENTS),
        ):
            for name, n in tally.items():
                if n != seen[name]:
                    counter.labels(name).inc(n - seen[name])
                    seen[name] = n
        if rebirths != self._rebirths:
            REBIRTHS.inc(rebirths - self._rebirths)
            self._rebirths = rebirths

"""The alarm system's performance figures (ISA-18.2 / EEMUA 191) over a period, computed
from the rows hub.storage.alarm_report reads. Pure functions: no I/O, so every definition
is tested with exact figures.

Definitions (docs/alarms.md says the same to users):

* An alarm counts in the period it was annunciated in (``opened_at`` in [from, to)).
* 10-minute periods are aligned to ``from``; ``per_10min_peak`` is the most alarms in one.
* Flood: N(t), the alarms annunciated in (t - 600 s, t], is above 10. A flood is a maximal
  interval of such t (clipped to the period): it starts at the 11th alarm of a 10-minute
  window and ends 600 s after the oldest of the last 11 alarms, when N(t) falls back to 10.
* Chattering: a source annunciating ``count`` alarms (3) within ``window_s`` (60 s).
* Stale: an alarm still active ``stale_after_s`` (24 h) after it was annunciated, from then
  until it cleared.
* Out of service: the periods (a sensor's own, a machine's MAINTENANCE or OFFLINE) reaching
  into the period, their time inside it, and the edge alerts held back meanwhile.
* Acknowledgement time: acknowledged_at - opened_at of the period's acknowledged alarms;
  ``p90`` is the nearest rank (the smallest time at least 90 % of them are within).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from hub.storage.alarm_report import AlarmRow, ServicePeriod, ShelveEntry

WINDOW_S = 600.0
FLOOD_ABOVE = 10
TOP_SOURCES = 10

# The standards' figures, per operator position (here: per factory). Each names its source.
TARGETS: dict[str, Any] = {
    "per_10min_avg": {"max": 1, "source": "EEMUA 191; ISA-18.2 (~1 very likely acceptable)"},
    "per_10min_avg_manageable": {"max": 2, "source": "EEMUA 191; ISA-18.2 (maximum manageable)"},
    "per_day_avg": {"max": 150, "source": "ISA-18.2 (~150 very likely acceptable)"},
    "per_day_avg_manageable": {"max": 300, "source": "ISA-18.2 (~300 maximum manageable)"},
    "per_10min_peak": {"max": FLOOD_ABOVE, "source": "ISA-18.2 (at most 10 in 10 minutes)"},
    "flood_time_share": {"max": 0.01, "source": "ISA-18.2 (~<1 % of the time in flood)"},
    "top_sources_share": {"max": 0.05, "source": "ISA-18.2 (top 10 ~1 % to 5 % of the load)"},
    "chattering": {"max": 0, "source": "ISA-18.2 (zero chattering and fleeting alarms)"},
    "stale": {"max": 0, "source": "ISA-18.2 (fewer than 5 on any day); this hub aims at zero"},
}


@dataclass(frozen=True, slots=True)
class Period:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def merged(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``spans`` as disjoint intervals, oldest first (empty spans dropped)."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(s for s in spans if s[1] > s[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _clip(spans: Iterable[tuple[float, float]], p: Period) -> list[tuple[float, float]]:
    return [(max(lo, p.start), min(hi, p.end)) for lo, hi in spans]


def floods(times: Sequence[float], p: Period) -> dict[str, Any]:
    """``times`` sorted. Alarms i-10..i lie in one window while t is in
    [times[i], times[i-10] + 600): the union of those spans is the time in flood."""
    n = FLOOD_ABOVE
    # Only the spans that are not empty (11 alarms within 600 s): a busy year has ~100,000
    # alarms but few such, and sorting them all was most of the report's work.
    pairs = zip(times[n:], times, strict=False)  # (times[i], times[i - n])
    spans = [(t, t0 + WINDOW_S) for t, t0 in pairs if t < t0 + WINDOW_S]
    found = merged(_clip(spans, p))
    lengths = [hi - lo for lo, hi in found]
    total = sum(lengths)
    return {
        "count": len(found),
        "total_s": round(total, 3),
        "longest_s": round(max(lengths, default=0.0), 3),
        "time_share": round(total / p.seconds, 6),
    }


def peak_per_window(times: Iterable[float], p: Period) -> int:
    # Counting a list is done in C; the window's index stays a float (equal keys hash alike).
    start = p.start
    per = Counter([(t - start) // WINDOW_S for t in times])
    return max(per.values(), default=0)


def chattering(
    alarms: Sequence[AlarmRow], p: Period, count: int, window_s: float
) -> dict[str, Any]:
    """Sources with ``count`` alarms within ``window_s``: how many, their alarms in such
    bursts, and the time covered by the bursts (first to last alarm of each)."""
    # Each source's alarms oldest first (as ``alarms`` are), the sources in the order they
    # first annunciated: a sensor by its id, a gateway's own alarms by (None, gateway).
    by_source: dict[int | tuple[None, int], list[float]] = defaultdict(list)
    for t, sensor, gateway in zip(
        _column(alarms, 0), _column(alarms, 1), _column(alarms, 2), strict=True
    ):
        by_source[(None, gateway) if sensor is None else sensor].append(t)
    sources, in_bursts, duration = 0, 0, 0.0
    k = count - 1
    for times in by_source.values():
        pairs = enumerate(zip(times[k:], times, strict=False), k)  # (i, (times[i], times[i - k]))
        ends = [i for i, (hi, lo) in pairs if hi - lo <= window_s]
        if not ends:
            continue
        sources += 1
        in_bursts += len({j for i in ends for j in range(i - count + 1, i + 1)})
        bursts = merged_closed([(times[i - count + 1], times[i]) for i in ends])
        duration += sum(hi - lo for lo, hi in bursts)
    return {"sources": sources, "alarms": in_bursts, "duration_s": round(duration, 3)}


def merged_closed(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Like :func:`merged` for closed spans, which may be single instants."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def stale(rows: Sequence[tuple[float, float | None]], p: Period, after_s: float) -> dict[str, Any]:
    spans = _clip(((o + after_s, p.end if c is None else c) for o, c in rows), p)
    spans = [s for s in spans if s[1] > s[0]]
    return {"alarms": len(spans), "duration_s": round(sum(hi - lo for lo, hi in spans), 3)}


def shelved(entries: Sequence[ShelveEntry], p: Period, at: float) -> dict[str, Any]:
    """Shelves from the journal: a ``shelved`` entry starts one (a second one renews it), an
    ``unshelved`` or ``shelve_expired`` ends it; one still running ends at its
    ``shelved_until`` (or now, or the period's end, whichever is first)."""
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    since: dict[int, float] = {}
    until: dict[int, float | None] = {}
    for e in entries:
        until[e.alert_id] = e.shelved_until
        if e.action == "shelved":
            since.setdefault(e.alert_id, e.at)
        elif e.alert_id in since:
            spans[e.alert_id].append((since.pop(e.alert_id), e.at))
    for alert_id, lo in since.items():
        end = until[alert_id]
        spans[alert_id].append((lo, min(at, p.end) if end is None else min(end, at, p.end)))
    clipped = {a: merged(_clip(s, p)) for a, s in spans.items()}
    clipped = {a: s for a, s in clipped.items() if s}
    total = sum(hi - lo for s in clipped.values() for lo, hi in s)
    return {"alarms": len(clipped), "duration_s": round(total, 3)}


def out_of_service(
    periods: Sequence[ServicePeriod], suppressed: int, p: Period, at: float
) -> dict[str, Any]:
    """Out-of-service periods reaching into the period (a sensor's own, and a machine's in
    MAINTENANCE or OFFLINE, each one period), their time inside it (one still running ends
    now), and the ``alarms`` the edge raised in the period that the hub held back."""
    end = min(at, p.end)
    kept: list[tuple[ServicePeriod, float]] = []
    for s in periods:
        [(lo, hi)] = _clip([(s.started_at, end if s.ended_at is None else s.ended_at)], p)
        if hi > lo:
            kept.append((s, hi - lo))
    return {
        "periods": len(kept),
        "sensors": len({s.sensor_id for s, _ in kept if s.sensor_id is not None}),
        "machines": len({s.machine_id for s, _ in kept if s.machine_id is not None}),
        "duration_s": round(sum(d for _, d in kept), 3),
        "alarms": suppressed,
    }


def ack_times(alarms: Sequence[AlarmRow]) -> dict[str, Any]:
    waits = sorted(
        max(0.0, acked - opened) for opened, _, _, _, acked in alarms if acked is not None
    )
    if not waits:
        return {"count": 0, "median": None, "p90": None}
    p90 = waits[math.ceil(0.9 * len(waits)) - 1]
    return {
        "count": len(waits),
        "median": round(statistics.median(waits), 3),
        "p90": round(p90, 3),
    }


def _column(alarms: Sequence[AlarmRow], field: int) -> Iterator[Any]:
    """One field of every alarm, read in C (no Python code per alarm)."""
    return map(itemgetter(field), alarms)


def top_sources(alarms: Sequence[AlarmRow]) -> list[tuple[tuple[int | None, int], int]]:
    """A sensor's alarms are one source whatever gateway fed them (``(sensor, 0)``); a
    gateway's own are one (``(None, gateway)``). Counted per (sensor, gateway) pair, then
    merged: a few hundred pairs, not one step per alarm."""
    counts: Counter[tuple[int | None, int]] = Counter()
    for (sensor, gateway), n in Counter(map(itemgetter(1, 2), alarms)).items():
        counts[(sensor, 0) if sensor is not None else (None, gateway)] += n

    # Ties: sensors by id, then gateways by id (a stable order on both engines).
    def order(kv: tuple[tuple[int | None, int], int]) -> tuple[int, bool, int, int]:
        (sensor, gateway), n = kv
        return (-n, sensor is None, sensor or 0, gateway)

    return sorted(counts.items(), key=order)[:TOP_SOURCES]


def severity_mix(alarms: Sequence[AlarmRow]) -> dict[str, dict[str, Any]]:
    # Counted as stored, then merged by lower case: a few distinct names, not one per alarm.
    counts: Counter[str] = Counter()
    for severity, n in Counter(_column(alarms, 3)).items():
        counts[severity.lower()] += n
    total = len(alarms)
    return {s: {"count": n, "share": round(n / total, 6)} for s, n in sorted(counts.items())}


# The rate's bucket by the period's length: 10 minutes (the standards' own unit) up to two
# days, hours up to a month, days beyond; at most ~750 buckets either way.
RATE_BUCKETS = ((2 * 86400.0, WINDOW_S), (31 * 86400.0, 3600.0), (math.inf, 86400.0))


def rate(times: Iterable[float], p: Period) -> dict[str, Any]:
    """Alarms annunciated per bucket from ``p.start`` (the last bucket may be cut short by
    ``p.end``), to draw against the targets scaled to the bucket."""
    bucket = next(b for longest, b in RATE_BUCKETS if p.seconds <= longest)
    counts = [0] * math.ceil(p.seconds / bucket)
    start = p.start
    for i, n in Counter([(t - start) // bucket for t in times]).items():
        if 0 <= i < len(counts):
            counts[int(i)] = n
    return {"bucket_s": bucket, "counts": counts}

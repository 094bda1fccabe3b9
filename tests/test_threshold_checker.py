"""threshold_checker (Rust/PyO3): behaviour, buffers, errors, and properties vs a reference."""

from __future__ import annotations

import gc
import math
import pickle
from array import array
from collections import namedtuple
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threshold_checker as tc
from threshold_checker import Alert, check_array, check_batch, check_thresholds

# --- plain-Python reference (same rules and severity formula as the Rust crate) ---------


def ref_scale(threshold: float, lo: float | None, hi: float | None) -> float:
    if threshold != 0.0:
        return abs(threshold)
    if lo is not None and hi is not None and hi > lo:
        return hi - lo
    return 1.0


def ref_check(
    readings: list[tuple[int, float]], lo: float | None, hi: float | None
) -> list[tuple[int, float, str, float, str]]:
    out = []
    for rid, v in readings:
        if math.isnan(v):
            continue
        if hi is not None and v > hi:
            kind, thr = "above_maximum", hi
        elif lo is not None and v < lo:
            kind, thr = "below_minimum", lo
        else:
            continue
        excess = abs(v - thr) / ref_scale(thr, lo, hi)
        sev = "critical" if excess >= 0.2 else "high" if excess >= 0.1 else "medium"
        out.append((rid, v, kind, thr, sev))
    return out


def as_tuples(alerts: list[Alert]) -> list[tuple[int, float, str, float, str]]:
    return [(a.reading_id, a.value, a.breach_type, a.threshold_value, a.severity) for a in alerts]


# --- behaviour --------------------------------------------------------------------------


def test_seed_example() -> None:
    alerts = check_thresholds(
        readings=[(1, 75.0), (2, 95.0), (3, 10.0)], min_threshold=15.0, max_threshold=85.0
    )
    assert as_tuples(alerts) == [
        (2, 95.0, "above_maximum", 85.0, "high"),  # 10/85 = 11.8 %
        (3, 10.0, "below_minimum", 15.0, "critical"),  # 5/15 = 33 %
    ]


@pytest.mark.parametrize(
    ("value", "severity"),
    [(100.5, "medium"), (109.99, "medium"), (110.0, "high"), (119.0, "high"), (120.0, "critical")],
)
def test_severity_boundaries(value: float, severity: str) -> None:
    [alert] = check_thresholds([(1, value)], None, 100.0)
    assert alert.severity == severity


def test_equal_to_threshold_is_not_a_breach() -> None:
    assert check_thresholds([(1, 15.0), (2, 85.0)], 15.0, 85.0) == []


def test_no_thresholds_no_alerts() -> None:
    assert check_thresholds([(1, 1e300), (2, -1e300)], None, None) == []
    assert check_thresholds([], 0.0, 1.0) == []


def test_zero_threshold_uses_span_then_one() -> None:
    # span 10 -> 0.5 over is 5 %
    assert check_thresholds([(1, 0.5)], -10.0, 0.0)[0].severity == "medium"
    assert check_thresholds([(1, 1.5)], -10.0, 0.0)[0].severity == "high"
    # only max = 0 -> absolute units
    assert check_thresholds([(1, 0.25)], None, 0.0)[0].severity == "critical"


def test_nan_values_skipped_inf_values_critical() -> None:
    alerts = check_thresholds([(1, math.nan), (2, math.inf), (3, -math.inf)], 0.0, 10.0)
    assert as_tuples(alerts) == [
        (2, math.inf, "above_maximum", 10.0, "critical"),
        (3, -math.inf, "below_minimum", 0.0, "critical"),
    ]


def test_accepts_lists_ints_generators_and_keywords() -> None:
    gen = ((i, v) for i, v in [(1, 5), (2, 50)])
    assert [a.reading_id for a in check_thresholds(gen, max_threshold=10)] == [2]
    assert [a.reading_id for a in check_thresholds([[7, 50.0]], max_threshold=10)] == [7]
    reading = namedtuple("reading", "id value")
    assert [a.reading_id for a in check_thresholds([reading(8, 50.0)], max_threshold=10)] == [8]
    assert [a.reading_id for a in check_thresholds(((9, 50.0),), max_threshold=10)] == [9]


def test_alerts_are_not_tracked_by_the_cyclic_gc() -> None:
    # An Alert holds no references, so the GC must not walk it: a large result that stays
    # tracked makes every later collection slower than building the alerts was.
    results = [
        check_thresholds([(1, 95.0)], 15.0, 85.0),
        check_array(np.array([95.0]), 15.0, 85.0, ids=np.array([1], dtype=np.int64)),
        check_batch([(1, "a", 95.0)], {"a": (15.0, 85.0)}),
    ]
    gc.collect()
    for [alert] in results:
        assert not gc.is_tracked(alert)
        assert as_tuples([alert]) == [(1, 95.0, "above_maximum", 85.0, "high")]


def test_alert_value_semantics() -> None:
    [a] = check_thresholds([(42, 95.0)], 15.0, 85.0)
    b = Alert(42, 95.0, "above_maximum", 85.0, "high")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Alert(43, 95.0, "above_maximum", 85.0, "high")
    assert a != "not an alert"
    assert len({a, b}) == 1
    assert repr(a) == (
        "Alert(reading_id=42, value=95.0, breach_type='above_maximum', "
        "threshold_value=85.0, severity='high')"
    )
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.to_dict() == {
        "reading_id": 42,
        "value": 95.0,
        "breach_type": "above_maximum",
        "threshold_value": 85.0,
        "severity": "high",
    }
    with pytest.raises(AttributeError):
        a.value = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="severity"):
        Alert(1, 1.0, "above_maximum", 0.0, "low")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="breach_type"):
        Alert(1, 1.0, "sideways", 0.0, "high")  # type: ignore[arg-type]


def test_module_constants() -> None:
    assert tc.HIGH_RATIO == 0.1
    assert tc.CRITICAL_RATIO == 0.2
    assert isinstance(tc.__version__, str)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "match"),
    [
        (math.nan, None, "min_threshold"),
        (None, math.nan, "max_threshold"),
        (None, math.inf, "max_threshold"),
        (-math.inf, None, "min_threshold"),
        (2.0, 1.0, "must not be greater"),
    ],
)
def test_bad_thresholds_raise_value_error(lo: Any, hi: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_thresholds([(1, 1.0)], lo, hi)
    with pytest.raises(ValueError, match=match):
        check_array(np.array([1.0]), lo, hi)


@pytest.mark.parametrize(
    "readings",
    [
        42,
        [1.0],
        [(1,)],
        [(1, 2.0, 3.0)],
        [("a", 1.0)],
        [(1.5, 1.0)],
        [(1, "x")],
        [(1, None)],
        [{1: 2}],
    ],
)
def test_bad_readings_raise_type_error(readings: Any) -> None:
    with pytest.raises(TypeError):
        check_thresholds(readings, 0.0, 1.0)


def test_bad_threshold_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        check_thresholds([(1, 1.0)], "0", None)  # type: ignore[arg-type]


def test_out_of_range_id_is_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        check_thresholds([(2**70, 1.0)], 0.0, 0.5)


def test_error_message_points_at_the_reading() -> None:
    with pytest.raises(TypeError, match=r"readings\[1\]"):
        check_thresholds([(1, 1.0), (2, "x")], 0.0, 0.5)  # type: ignore[list-item]


# --- check_array ------------------------------------------------------------------------

VALUES = [75.0, 95.0, 10.0, math.nan, 85.0, 200.0]
EXPECTED = ref_check(list(enumerate(VALUES)), 15.0, 85.0)


def test_check_array_numpy() -> None:
    arr = np.array(VALUES, dtype=np.float64)
    assert as_tuples(check_array(arr, 15.0, 85.0)) == EXPECTED
    assert [a.reading_id for a in check_array(arr, 15.0, 85.0)] == [1, 2, 5]


def test_check_array_array_d_and_memoryview() -> None:
    arr = array("d", VALUES)
    assert as_tuples(check_array(arr, 15.0, 85.0)) == EXPECTED
    assert as_tuples(check_array(memoryview(arr), 15.0, 85.0)) == EXPECTED
    raw = memoryview(arr.tobytes()).cast("d")
    assert as_tuples(check_array(raw, 15.0, 85.0)) == EXPECTED


def test_check_array_unaligned_buffer() -> None:
    # A memoryview cast at an odd byte offset: the doubles are not 8-byte aligned.
    values = [float(i) for i in range(40)]
    buf = bytearray(1 + 8 * len(values))
    buf[1:] = array("d", values).tobytes()
    unaligned = memoryview(buf)[1:].cast("d")
    ids = bytearray(1 + 8 * len(values))
    ids[1:] = array("q", range(100, 140)).tobytes()
    got = check_array(unaligned, 3.0, 30.0, ids=memoryview(ids)[1:].cast("q"))
    assert as_tuples(got) == ref_check(list(zip(range(100, 140), values, strict=True)), 3.0, 30.0)


def test_check_array_ids() -> None:
    ids = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    got = check_array(np.array(VALUES), 15.0, 85.0, ids=ids)
    assert [a.reading_id for a in got] == [11, 12, 15]
    got = check_array(array("d", VALUES), 15.0, 85.0, array("q", range(100, 106)))
    assert [a.reading_id for a in got] == [101, 102, 105]
    assert check_array(np.array(VALUES), 15.0, 85.0, ids=None) == check_array(
        np.array(VALUES), 15.0, 85.0
    )


def test_check_array_reads_in_place() -> None:
    arr = np.zeros(4)
    assert check_array(arr, None, 1.0) == []
    arr[2] = 5.0  # the same buffer, mutated: seen on the next call, no stale copy
    assert [a.reading_id for a in check_array(arr, None, 1.0)] == [2]
    ro = np.array([5.0])
    ro.flags.writeable = False
    assert len(check_array(ro, None, 1.0)) == 1


def test_check_array_empty_and_large() -> None:
    assert check_array(np.array([], dtype=np.float64), 0.0, 1.0) == []
    big = np.zeros(1_000_000)
    big[[3, 999_999]] = [2.0, -2.0]
    got = check_array(big, -1.0, 1.0)
    assert [(a.reading_id, a.breach_type) for a in got] == [
        (3, "above_maximum"),
        (999_999, "below_minimum"),
    ]


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.0], dtype=np.float32),
        np.array([1], dtype=np.int64),
        array("f", [1.0]),
        b"12345678",
        [1.0, 2.0],
        np.array([1.0], dtype=">f8"),  # non-native byte order must not be misread
    ],
)
def test_check_array_wrong_dtype_type_error(values: Any) -> None:
    with pytest.raises(TypeError, match="values"):
        check_array(values, 0.0, 1.0)


def test_check_array_layout_errors() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        check_array(np.arange(10.0)[::2], 0.0, 1.0)
    with pytest.raises(ValueError, match="one-dimensional"):
        check_array(np.zeros((2, 2)), 0.0, 1.0)


def test_check_array_bad_ids() -> None:
    values = np.zeros(3)
    with pytest.raises(ValueError, match="same length"):
        check_array(values, 0.0, 1.0, ids=np.arange(4, dtype=np.int64))
    with pytest.raises(TypeError, match="ids"):
        check_array(values, 0.0, 1.0, ids=np.arange(3, dtype=np.int32))
    with pytest.raises(TypeError, match="ids"):
        check_array(values, 0.0, 1.0, ids=np.zeros(3))
    with pytest.raises(TypeError, match="ids"):
        check_array(values, 0.0, 1.0, ids=[1, 2, 3])


# --- check_batch ------------------------------------------------------------------------


def test_check_batch_many_sensors() -> None:
    readings = [(1, "a", 95.0), (2, "b", 95.0), (3, "c", 1e9), (4, "b", -1.0)]
    thresholds = {"a": (15.0, 85.0), "b": (0.0, 100.0)}
    got = check_batch(readings, thresholds)
    assert as_tuples(got) == [
        (1, 95.0, "above_maximum", 85.0, "high"),
        (4, -1.0, "below_minimum", 0.0, "medium"),  # span 100 -> 1 %
    ]
    assert check_batch([], {}) == []


def test_check_batch_errors() -> None:
    with pytest.raises(ValueError, match=r"thresholds\['a'\]|thresholds\[\"a\"\]"):
        check_batch([], {"a": (2.0, 1.0)})
    with pytest.raises(TypeError):
        check_batch([], [("a", (1.0, 2.0))])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_batch([], {"a": "nope"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="sensor_key"):
        check_batch([(1, 2, 3.0)], {"a": (None, 1.0)})


# --- properties -------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
values_st = st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@st.composite
def bounds_st(draw: st.DrawFn) -> tuple[float | None, float | None]:
    lo = draw(st.one_of(st.none(), finite))
    hi = draw(st.one_of(st.none(), finite))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return lo, hi


@settings(max_examples=300, deadline=None)
@given(
    readings=st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), values_st), max_size=50),
    bounds=bounds_st(),
)
def test_matches_reference(
    readings: list[tuple[int, float]], bounds: tuple[float | None, float | None]
) -> None:
    lo, hi = bounds
    expected = ref_check(readings, lo, hi)
    assert as_tuples(check_thresholds(readings, lo, hi)) == expected


@settings(max_examples=200, deadline=None)
@given(values=st.lists(values_st, max_size=50), bounds=bounds_st())
def test_check_array_matches_check_thresholds(
    values: list[float], bounds: tuple[float | None, float | None]
) -> None:
    lo, hi = bounds
    expected = check_thresholds(list(enumerate(values)), lo, hi)
    assert check_array(np.array(values, dtype=np.float64), lo, hi) == expected
    ids = [i * 7 - 3 for i in range(len(values))]
    assert as_tuples(check_array(array("d", values), lo, hi, ids=array("q", ids))) == ref_check(
        list(zip(ids, values, strict=True)), lo, hi
    )


@settings(max_examples=200, deadline=None)
@given(readings=st.lists(st.tuples(st.integers(0, 1000), finite), max_size=30), bounds=bounds_st())
def test_alerts_are_outside_the_band(
    readings: list[tuple[int, float]], bounds: tuple[float | None, float | None]
) -> None:
    lo, hi = bounds
    alerts = check_thresholds(readings, lo, hi)
    flagged = {a.reading_id for a in alerts}
    for a in alerts:
        if a.breach_type == "above_maximum":
            assert hi is not None and a.threshold_value == hi and a.value > hi
        else:
            assert lo is not None and a.threshold_value == lo and a.value < lo
    for rid, v in readings:
        outside = (lo is not None and v < lo) or (hi is not None and v > hi)
        if outside:
            assert rid in flagged


# --- RuleEngine: stateful alerting vs a plain-Python reference -----------------------------

from threshold_checker import AlertEvent, Rule, RuleEngine  # noqa: E402


def ref_severity(value: float, thr: float, lo: float | None, hi: float | None) -> str:
    excess = abs(value - thr) / ref_scale(thr, lo, hi)
    return "critical" if excess >= 0.2 else "high" if excess >= 0.1 else "medium"


class RefEngine:
    """The README's rules, written plainly: one sensor, one rule."""

    def __init__(
        self,
        lo: float | None,
        hi: float | None,
        deadband: float,
        clear: int,
        max_rate: float | None,
    ) -> None:
        self.lo, self.hi, self.db, self.clear, self.max_rate = lo, hi, deadband, clear, max_rate
        self.open: dict[str, Any] | None = None
        self.run = 0
        self.rate_open: dict[str, Any] | None = None
        self.rate_run = 0
        self.last: tuple[float, float] | None = None

    def _sev(self, v: float, thr: float) -> str:
        return ref_severity(v, thr, self.lo, self.hi)

    def step(self, seq: int, ts: float, v: float) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        if math.isnan(v):
            return out

        def ev(kind: str, a: dict[str, Any]) -> None:
            out.append((kind, a["breach"], a["sev"], a["thr"], a["value"], ts, a["opened_at"], seq))

        breach = None
        if self.hi is not None and v > self.hi:
            breach = ("above_maximum", self.hi)
        elif self.lo is not None and v < self.lo:
            breach = ("below_minimum", self.lo)
        if breach is not None:
            self.run = 0
            if self.open is not None and self.open["breach"] == breach[0]:
                a = self.open
                worse = v > a["value"] if breach[0] == "above_maximum" else v < a["value"]
                if worse:
                    a["value"] = v
                    sev = self._sev(v, a["thr"])
                    order = ["medium", "high", "critical"]
                    if order.index(sev) > order.index(a["sev"]):
                        a["sev"] = sev
                        ev("update", a)
            else:
                if self.open is not None:
                    ev("close", self.open)
                self.open = {
                    "breach": breach[0],
                    "thr": breach[1],
                    "value": v,
                    "sev": self._sev(v, breach[1]),
                    "opened_at": ts,
                }
                ev("open", self.open)
        elif self.open is not None:
            clear = (self.lo is None or v >= self.lo + self.db) and (
                self.hi is None or v <= self.hi - self.db
            )
            self.run = self.run + 1 if clear else 0
            if self.run >= self.clear:
                ev("close", self.open)
                self.open, self.run = None, 0
        if self.max_rate is not None and self.last is not None and ts > self.last[0]:
            rate = abs((v - self.last[1]) / (ts - self.last[0]))
            mr = self.max_rate
            sev = ref_severity(rate, mr, mr, None)  # scale = |max_rate|
            if rate > mr:
                self.rate_run = 0
                if self.rate_open is None:
                    self.rate_open = {
                        "breach": "rate_of_change",
                        "thr": mr,
                        "value": rate,
                        "sev": sev,
                        "opened_at": ts,
                    }
                    ev("open", self.rate_open)
                elif rate > self.rate_open["value"]:
                    self.rate_open["value"] = rate
                    order = ["medium", "high", "critical"]
                    if order.index(sev) > order.index(self.rate_open["sev"]):
                        self.rate_open["sev"] = sev
                        ev("update", self.rate_open)
            elif self.rate_open is not None:
                self.rate_run += 1
                if self.rate_run >= self.clear:
                    ev("close", self.rate_open)
                    self.rate_open, self.rate_run = None, 0
        if self.last is None or ts > self.last[0]:
            self.last = (ts, v)
        return out


def ev_tuple(e: AlertEvent) -> tuple[Any, ...]:
    return (
        e.kind,
        e.breach_type,
        e.severity,
        e.threshold_value,
        e.value,
        e.ts,
        e.opened_at,
        e.reading_seq,
    )


def test_engine_one_excursion_one_alert() -> None:
    eng = RuleEngine({"l1/m1/temp": Rule(min=15.0, max=85.0, deadband=2.0, clear_count=3)})
    values = [50.0] * 3 + [90.0] * 10 + [50.0] * 5
    events = eng.process([(i + 1, "l1/m1/temp", float(i), v) for i, v in enumerate(values)])
    assert [e.kind for e in events] == ["open", "close"]
    opened, closed = events
    assert (opened.reading_seq, opened.opened_seq, closed.reading_seq) == (4, 4, 16)
    assert (closed.rule, closed.breach_type, closed.value) == ("threshold", "above_maximum", 90.0)
    assert closed.opened_at == 3.0 and closed.ts == 15.0
    assert eng.open_alerts() == []
    assert events[0].to_dict()["kind"] == "open"
    assert "AlertEvent(kind='open'" in repr(events[0])


def test_engine_rate_and_patterns_and_unruled_sensors() -> None:
    eng = RuleEngine({"+/+/pressure": Rule(max_rate=1.0), "l1/m1/pressure": Rule(max=10.0)})
    assert len(eng) == 2 and eng.rule_for("l2/m9/pressure") == Rule(max_rate=1.0)
    assert eng.rule_for("l1/m1/temp") is None
    events = eng.process(
        [
            (1, "l2/m9/pressure", 0.0, 0.0),
            (2, "l2/m9/pressure", 1.0, 5.0),
            (None, "l1/m1/temp", 1.0, 1e9),
        ]
    )
    assert [(e.kind, e.rule, e.value, e.threshold_value, e.severity) for e in events] == [
        ("open", "rate_of_change", 5.0, 1.0, "critical")
    ]


def test_engine_restore_and_rule_changes() -> None:
    rules = {"l/m/a": Rule(max=10.0, clear_count=2)}
    eng = RuleEngine(rules)
    eng.process([(1, "l/m/a", 0.0, 11.0)])
    saved = eng.open_alerts()
    fresh = RuleEngine(rules)
    fresh.restore(saved)
    assert fresh.open_alerts() == saved
    assert fresh.process([(2, "l/m/a", 1.0, 10.5)]) == []  # same excursion
    closed = fresh.set_rules({})
    assert [(e.kind, e.ts, e.reading_seq, e.opened_seq) for e in closed] == [
        ("close", 1.0, None, 1)
    ]
    # rebuilt from stored fields, as the agent does after a restart
    ev = AlertEvent(
        kind="open",
        key="l/m/a",
        breach_type="above_maximum",
        severity="high",
        threshold_value=10.0,
        value=11.5,
        ts=5.0,
        opened_at=5.0,
        opened_seq=7,
    )
    eng = RuleEngine(rules)
    eng.restore([ev])
    [close] = eng.process([(8, "l/m/a", 6.0, 1.0), (9, "l/m/a", 7.0, 1.0)])
    assert (close.kind, close.opened_seq, close.value, close.severity) == ("close", 7, 11.5, "high")


def test_engine_bad_input_raises_never_panics() -> None:
    eng = RuleEngine({"l/m/a": Rule(max=1.0)})
    with pytest.raises(TypeError):
        eng.process([(1, "l/m/a", 1.0)])
    with pytest.raises(TypeError):
        eng.process([("x", "l/m/a", 1.0, 1.0)])
    with pytest.raises(TypeError):
        eng.process([(1, 5, 1.0, 1.0)])
    with pytest.raises(TypeError):
        eng.process([(1, "l/m/a", "now", 1.0)])
    with pytest.raises(ValueError):
        eng.process([(2**70, "l/m/a", 1.0, 1.0)])
    with pytest.raises(TypeError):
        eng.process(5)  # type: ignore[arg-type]
    # validation happens before any state changes
    with pytest.raises(TypeError):
        eng.process([(1, "l/m/a", 0.0, 5.0), (2, "l/m/a", 1.0, None)])
    assert eng.open_alerts() == []
    for kwargs in [
        dict(min=2.0, max=1.0),
        dict(deadband=-1.0),
        dict(deadband=math.nan),
        dict(clear_count=0),
        dict(clear_count=2**70),
        dict(max_rate=0.0),
        dict(max_rate=math.inf),
        dict(min=0.0, max=1.0, deadband=0.6),
        dict(min=math.nan),
    ]:
        with pytest.raises(ValueError):
            Rule(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Rule(clear_count="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="line/machine/sensor"):
        eng.set_rules({"l/m": Rule()})
    with pytest.raises(TypeError):
        eng.set_rules({"l/m/a": (0.0, 1.0)})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        eng.set_rules([("l/m/a", Rule())])  # type: ignore[arg-type]
    assert eng.rules() == {"l/m/a": Rule(max=1.0)}  # unchanged after the errors
    with pytest.raises(ValueError):
        AlertEvent(
            kind="opened",  # type: ignore[arg-type]
            key="l/m/a",
            breach_type="above_maximum",
            severity="high",
            threshold_value=1.0,
            value=2.0,
            ts=0.0,
            opened_at=0.0,
        )
    with pytest.raises(ValueError):
        AlertEvent(
            kind="open",
            key="l/m/a",
            breach_type="above_maximum",
            severity="high",
            threshold_value=1.0,
            value=2.0,
            ts=0.0,
            opened_at=0.0,
            rule="rate_of_change",
        )
    with pytest.raises(TypeError):
        eng.restore([1])  # type: ignore[list-item]


def test_rule_value_semantics() -> None:
    r = Rule(1.0, 2.0, 0.25, 3, 4.0)
    assert pickle.loads(pickle.dumps(r)) == r and hash(r) == hash(Rule(1.0, 2.0, 0.25, 3, 4.0))
    assert r.to_dict() == {
        "min": 1.0,
        "max": 2.0,
        "deadband": 0.25,
        "clear_count": 3,
        "max_rate": 4.0,
    }
    assert repr(Rule()) == "Rule(min=None, max=None, deadband=0.0, clear_count=1, max_rate=None)"


_vals = st.one_of(st.floats(min_value=-200, max_value=200), st.just(math.nan))


@settings(max_examples=300, deadline=None)
@given(
    lo=st.one_of(st.none(), st.floats(-100, 0)),
    hi=st.one_of(st.none(), st.floats(0, 100)),
    deadband=st.floats(0, 10),
    clear=st.integers(1, 4),
    max_rate=st.one_of(st.none(), st.floats(0.5, 50)),
    steps=st.lists(st.tuples(st.floats(-1, 5), _vals), max_size=60),
    split=st.integers(0, 60),
)
def test_engine_matches_reference(
    lo: float | None,
    hi: float | None,
    deadband: float,
    clear: int,
    max_rate: float | None,
    steps: list[tuple[float, float]],
    split: int,
) -> None:
    if lo is not None and hi is not None and lo + deadband > hi - deadband:
        with pytest.raises(ValueError):
            Rule(lo, hi, deadband, clear, max_rate)
        return
    ref = RefEngine(lo, hi, deadband, clear, max_rate)
    eng = RuleEngine({"l/m/s": Rule(lo, hi, deadband, clear, max_rate), "l/m/other": Rule(max=0)})
    ts = 0.0
    readings = []
    expected: list[tuple[Any, ...]] = []
    for i, (dt, v) in enumerate(steps):
        ts += dt  # dt may be <= 0: out-of-order timestamps
        readings.append((i + 1, "l/m/s", ts, v))
        expected.extend(ref.step(i + 1, ts, v))
    # in one call or two: the same events (state carries over between calls)
    got = eng.process(readings[:split]) + eng.process(readings[split:])
    assert [ev_tuple(e) for e in got] == expected
    opened = sum(1 for e in got if e.kind == "open")
    closed = sum(1 for e in got if e.kind == "close")
    assert opened - closed == len(eng.open_alerts())


def test_a_rule_alert_carries_the_hub_rule_that_decides_it() -> None:
    above = tc.AlertRule("GREATER_THAN", 80.0, severity="WARNING", rule_id=11)
    below = tc.AlertRule("LESS_THAN", 80.0, severity="WARNING", rule_id=12)
    assert above.rule_id == 11 and above.to_dict()["rule_id"] == 11
    assert "rule_id=11" in repr(above)
    assert tc.AlertRule("GREATER_THAN", 1.0).rule_id is None
    eng = RuleEngine()
    eng.set_alert_rules({"l/m/a": [above, below]})
    events = eng.process(
        [(1, "l/m/a", 0.0, 90.0), (2, "l/m/a", 1.0, 80.0), (3, "l/m/a", 2.0, 70.0)]
    )
    assert [(e.kind, e.rule_id) for e in events] == [("open", 11), ("close", 11), ("open", 12)]
    assert events[2].to_dict()["rule_id"] == 12
    # restored after a restart with its rule id, the alert goes on naming it
    fresh = RuleEngine()
    fresh.set_alert_rules({"l/m/a": [above, below]})
    fresh.restore(eng.open_alerts())
    assert fresh.open_alerts()[0].rule_id == 12
    # only a rule alert names a hub rule
    ev = AlertEvent(
        kind="open",
        key="l/m/a",
        breach_type="above_maximum",
        severity="high",
        threshold_value=1.0,
        value=2.0,
        ts=0.0,
        opened_at=0.0,
        rule_id=5,
    )
    assert ev.rule_id is None

"""threshold_checker (Rust/PyO3): behaviour, buffers, errors, and properties vs a reference."""

from __future__ import annotations

import math
import pickle
from array import array
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

"""threshold_checker.rollup_partials: the hub's rollup fold, against a plain-Python oracle;
and pg_batch_arrays, the same fold with the rows' columns as PostgreSQL binary arrays,
against struct-packed arrays of the same values.

The hub-level property tests (tests/hub/test_rollups.py) compare what the tiers answer with
the raw readings on both engines; these pin the function itself: its bucket rule, its
(ts, id) order for first and last, its sort order, and its errors."""

from __future__ import annotations

import math
import struct
from itertools import chain, repeat
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threshold_checker import pg_batch_arrays, rollup_partials


def oracle(rows: list[tuple[Any, ...]], width: float, coarse: float) -> tuple[list, list]:
    def fold(groups: dict[tuple[int, float], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        out = []
        for (sid, b), members in sorted(groups.items()):
            values = [m[3] for m in members]
            first = min(members, key=lambda m: (m[2], m[0]))
            last = max(members, key=lambda m: (m[2], m[0]))
            out.append(
                (sid, b, min(values), max(values), math.fsum(values), len(values),
                 first[2], first[0], first[3], last[2], last[0], last[3])
            )  # fmt: skip
        return out

    minutes: dict[tuple[int, float], list[tuple[Any, ...]]] = {}
    hours: dict[tuple[int, float], list[tuple[Any, ...]]] = {}
    for r in rows:
        b = math.floor(r[2] / width) * width
        minutes.setdefault((r[1], b), []).append(r)
        hours.setdefault((r[1], math.floor(b / coarse) * coarse), []).append(r)
    return fold(minutes), fold(hours)


def same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert [g[:4] + g[5:] for g in got] == [w[:4] + w[5:] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[4] == pytest.approx(w[4], rel=1e-12, abs=1e-9)  # sums: order of addition


rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 40),  # seq, made unique below
        st.integers(1, 4),  # sensor
        st.floats(1_700_000_000, 1_700_020_000, allow_nan=False),  # ts: ~5.5 hours
        st.floats(-1e6, 1e6, allow_nan=False),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(rows_strategy, st.booleans())
def test_matches_the_oracle(raw: list[tuple[int, int, float, float]], coarse_ts: bool) -> None:
    # Unique ids, as stored rows have; coarse_ts makes equal ts (ties broken by id) common.
    rows = [
        (i * 7 + seq, sid, float(round(ts, -2)) if coarse_ts else ts, value, 1, seq)
        for i, (seq, sid, ts, value) in enumerate(raw)
    ]
    minutes, hours = rollup_partials(rows, [60.0, 3600.0])
    want_m, want_h = oracle(rows, 60.0, 3600.0)
    same(minutes, want_m)
    same(hours, want_h)


def test_interleaved_sensors_fold_into_one_bucket_each() -> None:
    # A gateway's batch: 100 sensors at 1 Hz, interleaved, 30 s of one minute.
    rows = [(i, i % 100, 1_700_000_040.0 + i // 100, float(i), 0, i) for i in range(3000)]
    minutes, hours = rollup_partials(rows, [60.0, 3600.0])
    assert len(minutes) == len(hours) == 100
    assert [m[0] for m in minutes] == list(range(100))
    assert all(m[5] == 30 for m in minutes)


def test_empty_and_no_widths() -> None:
    assert rollup_partials([], [60.0, 3600.0]) == [[], []]
    assert rollup_partials([(1, 1, 1.0, 1.0)], []) == []


@pytest.mark.parametrize(
    ("rows", "widths", "error", "match"),
    [
        ([(1, 1, 1.0)], [60.0], TypeError, r"rows\[0\] must be a tuple \(id, sensor_id, ts"),
        ([[1, 1, 1.0, 1.0]], [60.0], TypeError, r"rows\[0\] must be a tuple"),
        ([(1, "s", 1.0, 1.0)], [60.0], TypeError, r"sensor_id must be an int64"),
        ([(1, 1, "x", 1.0)], [60.0], TypeError, r"ts must be a float"),
        ([(1, 1, 1.0, math.nan)], [60.0], ValueError, r"rows\[0\]: ts and value must be finite"),
        ([(1, 1, math.inf, 1.0)], [60.0], ValueError, r"must be finite"),
        (
            [(1, 7, 60.0, 1e308), (2, 7, 61.0, 1e308)],
            [60.0],
            ValueError,
            r"sensor 7 in the bucket at 60 sum past the float range",
        ),
        ([], [0.0], ValueError, r"widths\[0\] must be a positive, finite"),
        ([], [60.0, 90.0], ValueError, r"whole multiple of widths\[0\]"),
    ],
)
def test_bad_input_is_a_clear_error(
    rows: list[Any], widths: list[float], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        rollup_partials(rows, widths)


def pg_array(oid: int, code: str, values: list[Any] | tuple[Any, ...]) -> bytes:
    """PostgreSQL's binary one-dimensional array without NULLs, as array_send writes it."""
    if not values:
        return struct.pack(">iiI", 0, 0, oid)
    elements = struct.pack(">" + ("i" + code) * len(values), *chain(*zip(repeat(8), values)))
    return struct.pack(">iiIii", 1, 0, oid, len(values), 1) + elements


INT8, FLOAT8 = 20, 701
# The tier tables' columns after the tier number: int8 (q) or float8 (d).
PARTIAL_CODES = "qddddqdqddqd"


def packed_partials(tiers: list[list[tuple[Any, ...]]]) -> list[bytes]:
    numbers = [n for n, tier in enumerate(tiers, 1) for _ in tier]
    columns = list(zip(*chain.from_iterable(tiers), strict=True)) or [()] * 12
    return [pg_array(INT8, "q", numbers)] + [
        pg_array(INT8 if c == "q" else FLOAT8, c, col)
        for c, col in zip(PARTIAL_CODES, columns, strict=True)
    ]


@settings(max_examples=200, deadline=None)
@given(rows_strategy.filter(bool))
def test_batch_arrays_are_the_rows_and_their_fold_packed(
    raw: list[tuple[int, int, float, float]],
) -> None:
    rows = [(i * 7 + seq, sid, ts, value, 1, seq) for i, (seq, sid, ts, value) in enumerate(raw)]
    widths = [60.0, 3600.0, 43200.0]
    columns, partials, bounds = pg_batch_arrays(rows, widths)
    ids, sensors, ts, values = list(zip(*rows, strict=True))[:4]
    assert columns == [
        pg_array(INT8, "q", ids),
        pg_array(INT8, "q", sensors),
        pg_array(FLOAT8, "d", ts),
        pg_array(FLOAT8, "d", values),
    ]
    assert partials == packed_partials(rollup_partials(rows, widths))
    assert bounds == (min(ids), max(ids), min(ts), max(ts))


def test_batch_arrays_without_tiers_and_their_errors() -> None:
    columns, partials, bounds = pg_batch_arrays([(5, 1, 61.0, -0.0)], [])
    assert partials == packed_partials([])
    assert columns[3] == pg_array(FLOAT8, "d", [-0.0])  # the float's bits, sign included
    assert bounds == (5, 5, 61.0, 61.0)
    with pytest.raises(ValueError, match="rows must not be empty"):
        pg_batch_arrays([], [60.0])
    with pytest.raises(ValueError, match=r"rows\[0\]: ts and value must be finite"):
        pg_batch_arrays([(1, 1, 1.0, math.inf)], [60.0])
    with pytest.raises(ValueError, match="sum past the float range"):
        pg_batch_arrays([(1, 7, 60.0, 1e308), (2, 7, 61.0, 1e308)], [60.0])

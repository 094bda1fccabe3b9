"""Rollup tiers agree with the raw readings, on both engines.

The reference is computed here in Python from the rows that ``readings`` holds: min, max,
count, first and last exactly, the average to the last bits of float addition (the tiers
sum in another order than one pass over the rows). Batches arrive in any order (late data
lands in old buckets), and some are sent twice (the second time nothing may count).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.storage import GatewayReport, Storage
from hub.storage.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from hub.storage.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.hub.conftest import engine_of, query

T0 = 1_699_999_200.0  # a whole hour
SPAN_MS = 3 * 86_400_000
REPORT = GatewayReport(0, 0, 0, "test")
WIDTHS = [1.0, 30.0, 60.0, 90.0, 120.0, 300.0, 3600.0, 7200.0, 86_400.0]

ts_ms = st.one_of(
    st.integers(0, SPAN_MS),
    # Near minute and hour edges, where pieces of a range meet.
    st.builds(lambda h, d: max(0, h * 3_600_000 + d), st.integers(0, 72), st.integers(-2000, 2000)),
    st.builds(lambda m, d: max(0, m * 60_000 + d), st.integers(0, 4320), st.integers(-50, 50)),
)
value = st.one_of(st.integers(-1000, 1000).map(float), st.floats(-1e6, 1e6, allow_nan=False))
reading = st.tuples(ts_ms, value)
batches = st.lists(st.lists(reading, min_size=1, max_size=40), min_size=1, max_size=6)
bound = st.one_of(st.none(), ts_ms.map(lambda ms: T0 + ms / 1000))


def reference(rows: list[tuple[Any, ...]], start: float | None, end: float | None) -> list[Any]:
    return [r for r in rows if (start is None or r[1] >= start) and (end is None or r[1] < end)]


def ref_buckets(rows: list[tuple[Any, ...]], width: float) -> list[tuple[Any, ...]]:
    groups: dict[float, list[tuple[Any, ...]]] = {}
    for r in rows:
        groups.setdefault(math.floor(r[1] / width) * width, []).append(r)
    out = []
    for b in sorted(groups):
        g = sorted(groups[b], key=lambda r: (r[1], r[0]))
        vals = [r[2] for r in g]
        out.append(
            (
                b,
                min(vals),
                max(vals),
                math.fsum(vals) / len(vals),
                len(vals),
                g[0][1],
                g[0][2],
                g[-1][1],
                g[-1][2],
            )
        )
    return out


def close(a: float | None, b: float | None, scale: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


class Feeder:
    """One new gateway and sensor per example: examples share the database, not data."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.n = 0

    def new(self) -> tuple[int, int, str]:
        self.n += 1
        gateway = self.storage.add_gateway(f"gw-{self.n}", "acme", f"hash-{self.n}")
        factory = self.storage.get_gateway(f"gw-{self.n}")["factory_id"]  # type: ignore[index]
        return gateway, factory, f"l/m/s{self.n}"


def store(
    storage: Storage, feeder: Feeder, data: list[list[tuple[int, float]]], resend: list[int]
) -> int:
    from shared.wire import WireReading

    gateway, factory, key = feeder.new()
    sent: list[list[WireReading]] = []
    seq = 0
    for batch in data:
        readings = []
        for ms, v in batch:
            readings.append(WireReading(seq, key, T0 + ms / 1000, v, None))
            seq += 1
        sent.append(readings)
        storage.store_batch(gateway, factory, readings, REPORT)
    for i in resend:
        again = sent[i % len(sent)]
        result = storage.store_batch(gateway, factory, again, REPORT)
        assert result.accepted == 0 and result.duplicates == len(again)
    sensor = storage.list_sensors(key=key)[0]["id"]
    return int(sensor)


@pytest.fixture
def feeder(storage: Storage) -> Feeder:
    return Feeder(storage)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=batches,
    resend=st.lists(st.integers(0, 5), max_size=2),
    ranges=st.lists(st.tuples(bound, bound), min_size=1, max_size=4),
    width=st.sampled_from(WIDTHS),
)
def test_series_and_stats_equal_raw(
    storage: Storage,
    feeder: Feeder,
    data: list[list[tuple[int, float]]],
    resend: list[int],
    ranges: list[tuple[float | None, float | None]],
    width: float,
) -> None:
    sensor = store(storage, feeder, data, resend)
    rows = [
        tuple(r)
        for r in query(storage, "SELECT id, ts, value FROM readings WHERE sensor_id = ?", (sensor,))
    ]
    assert len(rows) == sum(len(b) for b in data)  # nothing doubled by the re-sends
    scale = max(abs(r[2]) for r in rows)
    newest = max(rows, key=lambda r: (r[1], r[0]))
    assert storage.latest(sensor) == (newest[0], newest[1], newest[2])
    assert storage.history_span(sensor) == (min(r[1] for r in rows), newest[1])
    for start, end in [(None, None), *ranges]:
        if start is not None and end is not None and end < start:
            start, end = end, start
        part = reference(rows, start, end)
        got = storage.stats(sensor, start, end)
        if not part:
            assert got[3] == 0 and got[0] is None
        else:
            vals = [r[2] for r in part]
            assert got[0] == min(vals) and got[1] == max(vals) and got[3] == len(part)
            assert close(got[2], math.fsum(vals) / len(vals), scale)
            assert got[4] == min(r[1] for r in part) and got[5] == max(r[1] for r in part)
        want = ref_buckets(part, width)
        have = storage.buckets(sensor, start, end, width, 100_000)
        assert [h[0] for h in have] == [w[0] for w in want]
        for h, w in zip(have, want, strict=True):
            assert (h[1], h[2], h[4], h[5], h[6], h[7], h[8]) == (
                w[1],
                w[2],
                w[4],
                w[5],
                w[6],
                w[7],
                w[8],
            ), (h, w)
            assert close(h[3], w[3], scale)
        series = storage.series(sensor, start, end, width, 100_000)
        assert series == [h[:5] for h in have]


def test_tiers_hold_what_was_inserted(storage: Storage, feeder: Feeder) -> None:
    """The tiers themselves (not only the answers) count each stored reading once."""
    sensor = store(
        storage,
        feeder,
        [[(0, 1.0), (59_999, 2.0), (60_000, 3.0)], [(3_600_000, 4.0), (30_000, -1.0)]],
        resend=[0, 1],
    )
    minutes = query(
        storage,
        "SELECT bucket, count, min, max, first_value, last_value FROM rollup_1m "
        "WHERE sensor_id = ? ORDER BY bucket",
        (sensor,),
    )
    assert [tuple(m) for m in minutes] == [
        (T0, 3, -1.0, 2.0, 1.0, 2.0),
        (T0 + 60, 1, 3.0, 3.0, 3.0, 3.0),
        (T0 + 3600, 1, 4.0, 4.0, 4.0, 4.0),
    ]
    hours = query(
        storage,
        "SELECT bucket, count, sum FROM rollup_1h WHERE sensor_id = ? ORDER BY bucket",
        (sensor,),
    )
    assert [tuple(h) for h in hours] == [(T0, 4, 5.0), (T0 + 3600, 1, 4.0)]


def test_a_failed_batch_leaves_no_rollup(
    storage: Storage, feeder: Feeder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readings and their rollups commit together: a batch that fails after its readings
    were inserted and folded (here: in the edge alerts, stored next) leaves neither."""
    from shared.wire import WireAlert, WireReading

    gateway, factory, key = feeder.new()
    storage.store_batch(gateway, factory, [WireReading(0, key, T0, 1.0, None)], REPORT)

    def fail(*args: Any) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(storage, "_upsert_alerts", fail)
    alert = WireAlert(
        id=1,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity="medium",
        threshold_value=5.0,
        value=9.0,
        opened_at=T0 + 1,
    )
    with pytest.raises(RuntimeError):
        storage.store_batch(
            gateway, factory, [WireReading(1, key, T0 + 1, 9.0, None)], REPORT, [alert]
        )
    monkeypatch.undo()
    sensor = storage.list_sensors(key=key)[0]["id"]
    assert storage.stats(sensor, None, None)[:4] == (1.0, 1.0, 1.0, 1)
    for table in ("rollup_1m", "rollup_1h", "rollup_12h"):
        assert query(storage, f"SELECT sum(count) FROM {table} WHERE sensor_id = ?", (sensor,)) == [
            (1,)
        ]
    # The same batch sent again (the agent retries) is stored and counted once.
    storage.store_batch(gateway, factory, [WireReading(1, key, T0 + 1, 9.0, None)], REPORT)
    assert storage.stats(sensor, None, None)[3] == 2


def test_delete_rollups_of_a_sensor(storage: Storage, feeder: Feeder) -> None:
    a = store(storage, feeder, [[(0, 1.0), (4_000_000, 2.0)]], [])
    b = store(storage, feeder, [[(0, 5.0)]], [])
    with storage._write() as conn:  # type: ignore[attr-defined]
        storage.delete_rollups(conn, a)  # type: ignore[attr-defined]
    for table in ("rollup_1m", "rollup_1h", "rollup_12h"):
        assert query(storage, f"SELECT count(*) FROM {table} WHERE sensor_id = ?", (a,)) == [(0,)]
        assert query(storage, f"SELECT count(*) FROM {table} WHERE sensor_id = ?", (b,)) == [(1,)]


def test_a_seq_twice_in_one_batch_counts_once(storage: Storage, feeder: Feeder) -> None:
    from shared.wire import WireReading

    gateway, factory, key = feeder.new()
    # Same seq and ts (a reading repeated within one batch), another value.
    twice = [WireReading(5, key, T0 + 1, 1.0, None), WireReading(5, key, T0 + 1, 7.0, None)]
    result = storage.store_batch(gateway, factory, twice, REPORT)
    assert (result.accepted, result.duplicates) == (1, 1)
    sensor = storage.list_sensors(key=key)[0]["id"]
    # The insert keeps the first; so do the rollups.
    for table in ("rollup_1m", "rollup_1h", "rollup_12h"):
        assert query(storage, f"SELECT count, max FROM {table} WHERE sensor_id = ?", (sensor,)) == [
            (1, 1.0)
        ]


def test_the_12h_step_fills_the_tier_as_ingest_keeps_it(storage: Storage, feeder: Feeder) -> None:
    """A database from before the 12-hour tier: its migration step fills the tier from the
    hour tier, row for row what ingest keeps in it (late batches and re-sends included)."""
    data = [[(0, 1.0), (13 * 3_600_000, 2.5)], [(50 * 3_600_000, -4.0)], [(1_000, 7.0)]]
    sensors = [store(storage, feeder, data, [1]), store(storage, feeder, [[(5, 3.0)]], [])]
    sql = "SELECT * FROM rollup_12h ORDER BY sensor_id, bucket"
    kept = query(storage, sql)
    assert {int(r[0]) for r in kept} == set(sensors) and len(kept) == 4
    sqlite = engine_of(storage) == "sqlite"
    steps = SQLITE_MIGRATIONS if sqlite else PG_MIGRATIONS
    (step,) = [m.version for m in steps if "12h" in m.name]
    with storage._write() as conn:  # type: ignore[attr-defined]
        # Back to the schema before the step: the tier gone (on PostgreSQL with the Grafana
        # view that reads it, which a later step makes again), the version before it.
        conn.execute("DROP TABLE rollup_12h" + ("" if sqlite else " CASCADE"))
        if sqlite:
            conn.execute(f"PRAGMA user_version = {step - 1}")
        else:
            conn.execute("DELETE FROM schema_migrations WHERE version >= ?", (step,))
    assert storage.migrate() == len([m for m in steps if m.version >= step])
    assert query(storage, sql) == kept
    assert storage.stats(sensors[0], None, None)[:4] == (-4.0, 7.0, 6.5 / 4, 4)

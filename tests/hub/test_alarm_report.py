"""The alarm KPI report over a generated alarm history with known answers (a flood, a
chattering sensor, a stale alarm, shelved ones, acknowledgements), on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hub.alert_settings import AlarmSettings
from hub.api import alarm_kpis as kpi
from hub.api.alarm_report import MAX_ROWS, STALE_AFTER_S
from hub.api.alarm_report import alarm_report as report_of
from hub.api.alarms import MAX_SHELVE_S
from hub.storage import GatewayReport, Storage
from hub.storage.alarm_report import Annunciated
from shared.wire import WireReading

T0 = 1_700_000_000.0
DAY = 86400.0
KEYS = ("p/m/a", "p/m/b", "p/m/c", "p/m/s", "p/m/h", "p/m/g")


@dataclass
class Fleet:
    storage: Storage
    gateway: int
    factory: int
    other_factory: int
    other_gateway: int
    sensor: dict[str, int]
    next_id: int = 1

    def alarm(
        self,
        key: str | None,
        opened: float,
        *,
        severity: str = "high",
        cleared: float | None = None,
        acked: float | None = None,
        gateway: int | None = None,
        factory: int | None = None,
    ) -> int:
        alert_id = self.next_id
        self.next_id += 1
        with self.storage.db.write() as conn:
            conn.execute(
                "INSERT INTO alerts (id, kind, gateway_id, factory_id, sensor_id, edge_alert_id, "
                "severity, state, acknowledged, acknowledged_at, opened_at, cleared_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert_id,
                    "gateway_offline" if key is None else "threshold",
                    self.gateway if gateway is None else gateway,
                    self.factory if factory is None else factory,
                    None if key is None else self.sensor[key],
                    None if key is None else alert_id,
                    severity,
                    "active" if cleared is None else "cleared",
                    acked is not None,
                    acked,
                    opened,
                    cleared,
                    opened,
                ),
            )
            conn.execute(
                "INSERT INTO alert_journal (alert_id, at, role, action) VALUES (?, ?, ?, ?)",
                (alert_id, opened, "gateway", "opened"),
            )
        return alert_id

    def journal(self, alert_id: int, at: float, action: str, until: float | None = None) -> None:
        with self.storage.db.write() as conn:
            conn.execute(
                "INSERT INTO alert_journal (alert_id, at, role, action) VALUES (?, ?, ?, ?)",
                (alert_id, at, "operator", action),
            )
            conn.execute("UPDATE alerts SET shelved_until = ? WHERE id = ?", (until, alert_id))

    def out_of_service(
        self, start: float, end: float | None, key: str | None, factory: int | None = None
    ) -> None:
        """A period of the sensor ``key`` itself, or (``key`` None) of the sensors' machine."""
        with self.storage.db.write() as conn:
            machine = conn.execute(
                "SELECT machine_id FROM sensors WHERE id = ?", (self.sensor["p/m/a"],)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO service_periods (factory_id, sensor_id, machine_id, machine_status, "
                "started_at, ended_at, role) VALUES (?, ?, ?, ?, ?, ?, 'operator')",
                (
                    self.factory if factory is None else factory,
                    None if key is None else self.sensor[key],
                    machine if key is None else None,
                    "MAINTENANCE" if key is None else None,
                    start,
                    end,
                ),
            )

    def held_back(
        self, opened: float, *, gateway: int | None = None, suppressed: bool = True
    ) -> None:
        """An edge alert of sensor a as ingest records it (held back: out of service)."""
        self.next_id += 1
        with self.storage.db.write() as conn:
            conn.execute(
                "INSERT INTO edge_alerts (gateway_id, alert_id, sensor_id, rule, breach_type, "
                "severity, threshold_value, value, opened_at, received_at, suppressed) "
                "VALUES (?, ?, ?, 'threshold', 'above_maximum', 'high', 1.0, 2.0, ?, ?, ?)",
                (
                    self.gateway if gateway is None else gateway,
                    self.next_id,
                    self.sensor["p/m/a"],
                    opened,
                    opened,
                    suppressed,
                ),
            )


@pytest.fixture
def fleet(storage: Storage) -> Iterator[Fleet]:
    gw = storage.add_gateway("gw-a", "plant", "ha")
    other = storage.add_gateway("gw-o", "other", "ho")
    factories = {g["name"]: g["factory_id"] for g in storage.list_gateways()}
    readings = [WireReading(i + 1, k, T0 - DAY, 1.0, None) for i, k in enumerate(KEYS)]
    storage.store_batch(gw, factories["gw-a"], readings, GatewayReport(0, 0, 0, "t"))
    sensors = {s["key"]: s["id"] for s in storage.list_sensors()}
    yield Fleet(storage, gw, factories["gw-a"], factories["gw-o"], other, sensors)


def known_history(f: Fleet) -> None:
    """One day from T0 in factory "plant", each piece with its own answer."""
    # A flood: 12 alarms 50 s apart from T0+1000 (a and b in turn, none chattering). The 11th
    # (T0+1500) makes 11 in 10 minutes; the window falls back to 10 at T0+1650.
    for k in range(12):
        acked = T0 + 1000 + 50 * k + 10 * (k + 1) if k < 10 else None  # waits 10..100 s
        f.alarm("p/m/a" if k % 2 == 0 else "p/m/b", T0 + 1000 + 50 * k, acked=acked)
    # Chattering: c annunciates 3 alarms within 40 s, then a 4th 60 s after the first.
    for t in (5000, 5020, 5040, 5100):
        f.alarm("p/m/c", T0 + t, severity="medium", cleared=T0 + t + 5)
    # Stale: s's alarm from T0-80000 still active is stale from T0+6400 (80000 s of the day);
    # one annunciated at T0+10000 clears before 24 h; one at T0 (the period's first instant).
    f.alarm("p/m/s", T0 - 80000, severity="critical")
    f.alarm("p/m/s", T0 + 10000, severity="critical", cleared=T0 + 10000 + DAY - 1)
    f.alarm("p/m/s", T0, severity="critical", cleared=T0 + 1)
    # Shelved: 300 s (h), 400 s up to the period's end (g, still shelved), and 100 s of a
    # shelve from before the period (an alarm annunciated before it).
    h = f.alarm("p/m/h", T0 + 20000, severity="critical")
    f.journal(h, T0 + 20100, "shelved", T0 + 30000)
    f.journal(h, T0 + 20400, "unshelved")
    g = f.alarm("p/m/g", T0 + 85900, severity="critical")
    f.journal(g, T0 + 86000, "shelved", T0 + 90000)
    early = f.alarm("p/m/g", T0 - 1000, cleared=T0 - 900)
    f.journal(early, T0 - 500, "shelved", T0 + 100)
    f.journal(early, T0 + 100, "shelve_expired")
    # A gateway's own alarm; one at the period's end (not in it); one in another factory.
    f.alarm(None, T0 + 30000, severity="warning", cleared=T0 + 30100)
    f.alarm("p/m/a", T0 + DAY)
    f.alarm(None, T0 + 40000, gateway=f.other_gateway, factory=f.other_factory)
    # Out of service: b for 3000 s; c from before the period, 500 s of it inside; the machine
    # from T0+80000 on, still (6400 s up to the period's end): 9900 s in 3 periods. Not
    # counted: one that ended before the period, one of another factory.
    f.out_of_service(T0 + 50000, T0 + 53000, "p/m/b")
    f.out_of_service(T0 - 1000, T0 + 500, "p/m/c")
    f.out_of_service(T0 + 80000, None, None)
    f.out_of_service(T0 - 5000, T0 - 4000, "p/m/a")
    f.out_of_service(T0 + 100, T0 + 200, "p/m/a", factory=f.other_factory)
    # Held back while out of service: 2 in the period; not counted: one before it, one of
    # another factory's gateway, one the hub annunciated.
    f.held_back(T0 + 50100)
    f.held_back(T0 + 80100)
    f.held_back(T0 - 10)
    f.held_back(T0 + 100, gateway=f.other_gateway)
    f.held_back(T0 + 200, suppressed=False)


class FakeCtx:
    def __init__(self, params: dict[str, str]) -> None:
        self.params = params
        self.reads = None
        self.scope = None  # every factory, as an unscoped token sees them


def report(storage: Storage, **params: Any) -> dict[str, Any]:
    return report_of(storage, FakeCtx({k: str(v) for k, v in params.items()}))  # type: ignore[arg-type]


def test_known_history_gives_exact_figures(storage: Storage, fleet: Fleet) -> None:
    known_history(fleet)
    got = report(storage, **{"from": T0, "to": T0 + DAY, "factory_id": fleet.factory})
    assert got["alarms"] == 21
    assert got["per_day_avg"] == 21.0
    assert got["per_10min_avg"] == round(21 / 144, 6)
    assert got["per_10min_peak"] == 8  # T0+1200 .. T0+1550: the flood straddles two periods
    assert got["floods"] == {
        "count": 1,
        "total_s": 150.0,
        "longest_s": 150.0,
        "time_share": round(150 / DAY, 6),
    }
    s = fleet.sensor
    assert [(t["sensor_id"], t["key"], t["count"]) for t in got["top_sources"]] == [
        *sorted([(s["p/m/a"], "p/m/a", 6), (s["p/m/b"], "p/m/b", 6)]),
        (s["p/m/c"], "p/m/c", 4),
        (s["p/m/s"], "p/m/s", 2),
        *sorted([(s["p/m/h"], "p/m/h", 1), (s["p/m/g"], "p/m/g", 1)]),
        (None, None, 1),  # ties: sensors by id, then gateways
    ]
    assert got["top_sources"][-1]["gateway_id"] == "gw-a"
    assert got["top_sources"][0]["share"] == round(6 / 21, 6)
    assert got["chattering"] == {"sources": 1, "alarms": 3, "duration_s": 40.0}
    assert got["stale"] == {"alarms": 1, "duration_s": 80000.0}
    assert got["shelved"] == {"alarms": 3, "duration_s": 800.0}
    assert got["severity_mix"] == {
        "critical": {"count": 4, "share": round(4 / 21, 6)},
        "high": {"count": 12, "share": round(12 / 21, 6)},
        "medium": {"count": 4, "share": round(4 / 21, 6)},
        "warning": {"count": 1, "share": round(1 / 21, 6)},
    }
    assert got["ack_time_s"] == {"count": 10, "median": 55.0, "p90": 90.0}
    assert got["targets"]["per_10min_peak"]["max"] == 10
    assert got["out_of_service"] == {
        "periods": 3,
        "sensors": 2,
        "machines": 1,
        "duration_s": 9900.0,
        "alarms": 2,
    }


def test_the_fleet_and_a_quiet_factory(storage: Storage, fleet: Fleet) -> None:
    known_history(fleet)
    everything = report(storage, **{"from": T0, "to": T0 + DAY})
    assert everything["alarms"] == 22 and everything["factory_id"] is None
    quiet = report(storage, **{"from": T0, "to": T0 + DAY, "factory_id": fleet.other_factory})
    assert quiet["alarms"] == 1 and quiet["floods"]["count"] == 0
    assert quiet["ack_time_s"] == {"count": 0, "median": None, "p90": None}
    assert quiet["stale"] == {"alarms": 0, "duration_s": 0.0}


def test_more_rows_than_the_bound_is_refused_not_cut(storage: Storage, fleet: Fleet) -> None:
    known_history(fleet)
    history = storage.alarm_history(
        T0, T0 + DAY, None, stale_after_s=STALE_AFTER_S, shelves_since=T0 - MAX_SHELVE_S, limit=5
    )
    assert history.truncated and len(history.alarms) == 5
    assert MAX_ROWS >= 365 * 1000


def _times(*ts: float) -> list[Annunciated]:
    return [Annunciated(T0 + t, 1, 1, "high", None) for t in ts]


def test_flood_edges() -> None:
    day = kpi.Period(T0, T0 + DAY)
    # Exactly 10 in a window is no flood; 11 within 599 s is one lasting 1 s.
    ten = [T0 + 10 * k for k in range(10)]
    assert kpi.floods(ten, day)["count"] == 0
    eleven = [*ten, T0 + 599]
    assert kpi.floods(eleven, day) == {
        "count": 1,
        "total_s": 1.0,
        "longest_s": 1.0,
        "time_share": round(1 / DAY, 6),
    }
    # The 11th exactly 600 s after the first: the first has left the window.
    assert kpi.floods([*ten, T0 + 600], day)["count"] == 0
    # A flood running past the period's end counts up to it (from its 11th alarm, DAY - 90).
    late = [T0 + DAY - 100 + k for k in range(11)]
    assert kpi.floods(late, day)["total_s"] == 90.0


def test_chattering_needs_count_within_window() -> None:
    day = kpi.Period(T0, T0 + DAY)
    assert kpi.chattering(_times(0, 30, 61), day, 3, 60)["sources"] == 0
    assert kpi.chattering(_times(0, 30, 60), day, 3, 60) == {
        "sources": 1,
        "alarms": 3,
        "duration_s": 60.0,
    }


def test_the_hubs_alarm_settings_define_chattering_and_stale(
    storage: Storage, fleet: Fleet
) -> None:
    known_history(fleet)
    marks = AlarmSettings.model_validate(
        {"chattering_count": 4, "chattering_window_s": 100, "stale_after_s": DAY - 2}
    )
    period = {"from": str(T0), "to": str(T0 + DAY), "factory_id": str(fleet.factory)}
    got = report_of(storage, FakeCtx(period), marks)  # type: ignore[arg-type]
    assert got["chattering"] == {"sources": 1, "alarms": 4, "duration_s": 100.0}
    # The old alarm of s is stale from T0+6398 now; the one of T0+10000 only after the period.
    assert got["stale"] == {"alarms": 1, "duration_s": 80002.0}


def test_the_rate_bucket_follows_the_period() -> None:
    day = kpi.Period(0.0, 86400.0)
    assert kpi.rate([0.0, 599.9, 600.0, 86399.0, 86400.0, -1.0], day) == {
        "bucket_s": 600.0,
        "counts": [2, 1] + [0] * 141 + [1],
    }
    week = kpi.rate([3600.0 * 5 + 1], kpi.Period(0.0, 7 * 86400.0))
    assert week["bucket_s"] == 3600.0 and len(week["counts"]) == 168
    assert week["counts"][5] == 1 and sum(week["counts"]) == 1
    year = kpi.rate([], kpi.Period(0.0, 365 * 86400.0 + 1))
    assert year["bucket_s"] == 86400.0 and len(year["counts"]) == 366

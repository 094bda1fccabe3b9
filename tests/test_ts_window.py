"""The timestamp window: readings dated too far ahead of or behind their receipt."""

from __future__ import annotations

import time

import pytest

from shared.payload import PayloadError, TsWindow, parse_payload
from shared.wire import Batch, WireError, WireReading, validate_batch

WINDOW = TsWindow(max_future_s=300, max_past_s=30 * 86400)


def test_a_ts_inside_the_window_is_kept() -> None:
    now = 1_800_000_000.0
    got = parse_payload(b'{"value": 1, "ts": 1799999000}', now, window=WINDOW)
    assert got[0].ts == 1_799_999_000.0
    assert parse_payload(b"7", now, window=WINDOW)[0].ts == now  # no ts: the receipt time


@pytest.mark.parametrize(
    ("ts", "says"),
    [(1_800_000_301, "ahead of the time received (max_future_s = 300)"), (0, "max_past_s")],
)
def test_a_ts_outside_the_window_is_a_dead_letter_reason(ts: int, says: str) -> None:
    with pytest.raises(PayloadError, match=r"is a clock wrong") as err:
        parse_payload(
            f'[{{"value": 1}}, {{"value": 2, "ts": {ts}}}]'.encode(), 1.8e9, window=WINDOW
        )
    assert says in str(err.value) and str(err.value).startswith("[1]: ts ")


def test_no_window_takes_any_valid_ts() -> None:
    assert parse_payload(b'{"value": 1, "ts": 5}', 1.8e9)[0].ts == 5.0


def test_the_hub_names_each_reading_outside_its_window_by_seq() -> None:
    now = time.time()
    batch = Batch(
        gateway_id="gw",
        readings=[
            WireReading(9, "l/m/s", now, 1.0),
            WireReading(3, "l/m/s", now + 3600, 1.0),  # seqs out of order are fine
            WireReading(5, "l/m/s", now - 40 * 86400, 1.0),
        ],
    )
    validate_batch(batch)  # no window: accepted as it is
    with pytest.raises(WireError) as err:
        validate_batch(batch, WINDOW)
    assert [(d["seq"], d["field"]) for d in err.value.details] == [(3, "ts"), (5, "ts")]
    assert "the hub's clock" in err.value.details[0]["message"]


@pytest.mark.parametrize("ts", [4.4e16, 1.7976931348623157e308])
def test_a_ts_beyond_any_calendar_is_rejected_not_a_crash(ts: float) -> None:
    with pytest.raises(PayloadError, match="ahead of"):
        parse_payload(f'{{"value": 1, "ts": {ts!r}}}'.encode(), 1.8e9, window=WINDOW)
    with pytest.raises(WireError):
        validate_batch(Batch(gateway_id="gw", readings=[WireReading(1, "l/m/s", ts, 1.0)]), WINDOW)

"""Parameter parsing of the read side: bad input is a 400 naming the parameter."""

from __future__ import annotations

import pytest

from hub.api import queries
from hub.errors import ApiError


def bad(fn: object, *args: object) -> ApiError:
    with pytest.raises(ApiError) as err:
        fn(*args)  # type: ignore[operator]
    assert err.value.status == 400
    return err.value


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), ("500ms", 0.5), ("1.5m", 90.0)],
)
def test_bucket(raw: str, seconds: float) -> None:
    assert queries.parse_bucket({"bucket": raw}) == seconds


def test_bucket_default() -> None:
    assert queries.parse_bucket({}) == 60.0


@pytest.mark.parametrize("raw", ["7x", "s", "10", "-5s", "0s", "1e3s", "999d", " "])
def test_bad_bucket(raw: str) -> None:
    err = bad(queries.parse_bucket, {"bucket": raw})
    assert err.details[0]["param"] == "bucket"


def test_limit() -> None:
    assert queries.parse_limit({}) == queries.DEFAULT_LIMIT
    assert queries.parse_limit({"limit": "5"}) == 5
    assert queries.parse_limit({"limit": "100000"}) == 100_000
    for raw in ("abc", "0", "-1", "100001", "1.5", "²", "9" * 40):
        assert bad(queries.parse_limit, {"limit": raw}).details[0]["param"] == "limit"


def test_time() -> None:
    assert queries.parse_time({"from": "1700000000"}, "from") == 1_700_000_000.0
    assert queries.parse_time({"from": "1700000000.5"}, "from") == 1_700_000_000.5
    assert queries.parse_time({"from": "2023-11-14T22:13:20Z"}, "from") == 1_700_000_000.0
    assert queries.parse_time({"from": "2023-11-14T23:13:20+01:00"}, "from") == 1_700_000_000.0
    assert queries.parse_time({}, "from") is None
    for raw in ("garbage", "nan", "inf", "-5", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z"):
        assert bad(queries.parse_time, {"from": raw}, "from").details[0]["param"] == "from"


def test_range_order() -> None:
    assert queries.parse_range({"from": "10", "to": "20"}) == (10.0, 20.0)
    assert bad(queries.parse_range, {"from": "20", "to": "10"}).details[0]["param"] == "to"


def test_ids() -> None:
    assert queries.parse_id("id", "7") == 7
    for raw in (None, "", "abc", "0", "-3", "1.0", "99999999999999999999999"):
        assert bad(queries.parse_id, "id", raw).details[0]["param"] == "id"

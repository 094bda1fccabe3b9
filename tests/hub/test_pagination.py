"""hub.api.pagination: page/per_page parsing, the page numbers and links of a list answer."""

from __future__ import annotations

import msgspec
import pytest

from hub.api.pagination import MAX_PER_PAGE, PageRequest, page_body, page_links, parse_page
from hub.errors import ApiError


def test_defaults_are_page_one_of_a_hundred() -> None:
    req = parse_page({})
    assert (req.page, req.per_page, req.offset, req.limit) == (1, 100, 0, 100)
    assert parse_page({"page": "", "per_page": " "}) == req


def test_offset_follows_page_and_per_page() -> None:
    req = parse_page({"page": "3", "per_page": "25"})
    assert (req.offset, req.limit) == (50, 25)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "1.5"),
        ("page", "x"),
        ("page", "²"),
        ("page", "99999999999999999999"),
        ("per_page", "0"),
        ("per_page", str(MAX_PER_PAGE + 1)),
        ("per_page", "ten"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(name: str, raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_page({name: raw})
    err = caught.value
    assert err.status == 400
    assert err.details == [{"param": name, "message": err.details[0]["message"]}]
    assert name in err.message


def test_links_keep_filters_and_stop_at_the_last_page() -> None:
    params = {"factory_id": "7", "page": "2", "per_page": "20"}
    links = page_links("/api/v1/machines", params, PageRequest(2, 20), 150)
    assert links == {
        "self": "/api/v1/machines?factory_id=7&page=2&per_page=20",
        "next": "/api/v1/machines?factory_id=7&page=3&per_page=20",
        "last": "/api/v1/machines?factory_id=7&page=8&per_page=20",
    }
    last = page_links("/api/v1/machines", params, PageRequest(8, 20), 150)
    assert last["next"] is None
    assert last["self"] == last["last"]


def test_an_empty_list_has_one_empty_page() -> None:
    body = msgspec.json.decode(page_body("req_1", [], PageRequest(1, 100), 0, "/x", {}))
    assert body["data"] == []
    assert {k: body["meta"][k] for k in ("page", "per_page", "total", "total_pages")} == {
        "page": 1,
        "per_page": 100,
        "total": 0,
        "total_pages": 1,
    }
    assert body["links"] == {
        "self": "/x?page=1&per_page=100",
        "next": None,
        "last": "/x?page=1&per_page=100",
    }
    assert body["meta"]["request_id"] == "req_1"


def test_extra_meta_sits_beside_the_page_numbers() -> None:
    raw = page_body("r", [1, 2], PageRequest(1, 2), 5, "/a", {}, {"factory_id": 3})
    meta = msgspec.json.decode(raw)["meta"]
    assert meta["factory_id"] == 3
    assert meta["total_pages"] == 3

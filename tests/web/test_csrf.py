"""The same-origin rule and cookie parsing of the console, without a browser."""

from __future__ import annotations

import pytest

from hub.errors import ApiError
from hub.web import csrf, session


class FakeRequest:
    def __init__(self, **headers: str) -> None:
        self.headers = {k.replace("_", "-").lower(): v for k, v in headers.items()}


HOST = "hub.plant.example"


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": HOST}, True),  # no Origin: not a browser (the token still applies)
        ({"host": HOST, "origin": f"https://{HOST}"}, True),
        ({"host": HOST, "origin": f"https://{HOST}", "sec_fetch_site": "same-origin"}, True),
        ({"host": HOST, "origin": "https://evil.example"}, False),
        ({"host": HOST, "origin": f"https://{HOST}:8443"}, False),  # another port
        ({"host": HOST, "origin": f"https://{HOST}.evil.example"}, False),
        ({"host": HOST, "origin": "null"}, False),  # sandboxed frame, data: URL
        ({"host": HOST, "origin": f"ftp://{HOST}"}, False),
        ({"host": HOST, "sec_fetch_site": "cross-site"}, False),
        ({"host": HOST, "sec_fetch_site": "same-site"}, False),  # a sibling subdomain
        ({"origin": f"https://{HOST}"}, False),  # no Host to compare with
    ],
)
def test_same_origin(headers: dict[str, str], ok: bool) -> None:
    assert csrf.same_origin(FakeRequest(**headers)) is ok


def test_the_token_must_match() -> None:
    same = FakeRequest(host=HOST, origin=f"https://{HOST}")
    csrf.check(same, "s3cret", "s3cret")
    for wrong in (None, "", "s3cre", "s3cret!"):
        with pytest.raises(ApiError) as err:
            csrf.check(same, "s3cret", wrong)
        assert (err.value.status, err.value.code) == (403, "csrf")
    with pytest.raises(ApiError):
        csrf.check(FakeRequest(host=HOST, origin="https://evil.example"), "s3cret", "s3cret")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (None, None),
        ("", None),
        ("edge_session=abc", "abc"),
        ("theme=dark; edge_session=abc; other=1", "abc"),
        ("edge_session=", None),
        ("edge_session=" + "x" * 65, None),  # longer than any id the hub makes
        ('edge_session="unterminated', None),
        ("other=1", None),
    ],
)
def test_cookie_value(header: str | None, value: str | None) -> None:
    assert session.cookie_value(header) == value

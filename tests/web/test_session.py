"""Sessions that run out, and every page staying on the hub's origin under its CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from devtools.stack import Hub
from shared.timeutil import now
from tests.web.conftest import ENGINES, Console, running_console, session_cookies, start_console


@pytest.fixture(params=ENGINES)
def short_sessions(
    request: pytest.FixtureRequest, tmp_path: Path, browser: Browser
) -> Iterator[Console]:
    with running_console(request, tmp_path, browser, "session_lifetime_s = 3\n") as found:
        yield found


def test_an_expired_session_sends_the_open_page_back_to_sign_in(
    short_sessions: Console,
) -> None:
    console = short_sessions
    page = console.sign_in("operator")
    expect(page.locator('#fleet tr[data-gateway="gw-01"]')).to_be_visible()
    (cookie,) = session_cookies(page)
    # The page keeps polling; once the server has ended the session the next poll gets a
    # 401 and the page goes to sign-in by itself.
    page.wait_for_url(f"{console.url}/login?expired=1", timeout=20_000)
    expect(page.locator("#login-error")).to_contain_text("session has ended")
    # The cookie is still in the browser, but the server no longer knows it.
    r = page.request.get(
        f"{console.url}/api/v1/alerts", headers={"Cookie": f"edge_session={cookie['value']}"}
    )
    assert r.status == 401
    page.goto(f"{console.url}/alerts")
    page.wait_for_url(f"{console.url}/login")
    # Signing in again gives a new session.
    console.sign_in("operator", page)
    expect(page.locator("#role")).to_have_text("operator")


def test_every_page_loads_only_from_the_hub_under_its_csp(console: Console) -> None:
    console.ingest([(now() - 60 + i, 30.0 + i) for i in range(30)])
    sensor = console.sensor_id()
    with console.api("read") as c:
        machine = c.get(f"/api/v1/sensors/{sensor}").raise_for_status().json()["data"]
    page = console.sign_in("admin")
    paths = [
        "/",
        "/factories",
        "/factories/1",
        f"/machines/{machine['machine_id']}",
        f"/sensors/{sensor}",
        "/alerts",
    ]
    for path in paths:
        response = page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # A refresh has run: the page's data came from the API.
        expect(page.locator("body")).to_have_attribute("data-refreshes", re.compile(r"^[1-9]"))
    kinds = {u.removeprefix(console.url).split("?")[0] for u in console.requests}
    assert {
        "/static/console.js",
        "/static/console.css",
        "/static/plot.js",
        "/static/chart.js",
        "/static/plant.js",
        "/static/alarms.js",
        "/static/sensor.js",
    } <= kinds
    assert any(k.startswith("/api/v1/") for k in kinds)
    # check_clean (the fixture) asserts that every one of them went to the hub's origin.


@pytest.mark.parametrize("engine", ENGINES)
def test_a_session_made_on_one_hub_process_works_on_another(
    engine: str, tmp_path: Path, browser: Browser, request: pytest.FixtureRequest
) -> None:
    pg = request.getfixturevalue("web_pg") if engine == "postgresql" else None
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = start_console(engine, tmp_path / "a", browser, pg)
    # Another process and port over the same database.
    second = Hub(tmp_path / "b", database=first.hub.database)
    try:
        second.start()
        with httpx.Client(base_url=first.url) as a, httpx.Client(base_url=second.url) as b:
            signed = a.post(
                "/login", data={"token": first.tokens["operator"]}, headers={"Origin": first.url}
            )
            assert signed.status_code == 303
            cookie = {"Cookie": signed.headers["set-cookie"].split(";")[0]}
            assert b.get("/api/v1/gateways", headers=cookie).status_code == 200
            page = b.get("/alerts", headers=cookie)
            assert page.status_code == 200 and 'data-role="operator"' in page.text
            # Signed out on the second: the first no longer knows it either.
            csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            out = b.post(
                "/logout", data={"csrf_token": csrf}, headers={**cookie, "Origin": second.url}
            )
            assert out.status_code == 303
            assert a.get("/api/v1/gateways", headers=cookie).status_code == 401
    finally:
        second.stop()
        first.close()
        first.hub.stop()


def test_revoking_the_token_ends_its_sessions_and_sign_in_checks_the_origin(
    console: Console,
) -> None:
    page = console.sign_in("operator")
    expect(page.locator('#fleet tr[data-gateway="gw-01"]')).to_be_visible()
    console.hub.cli("token", "revoke", str(console.token_id("operator")))
    page.wait_for_url(f"{console.url}/login?expired=1", timeout=20_000)
    # A sign-in form posted from another site's page is refused, and no cookie is set.
    forged = page.request.post(
        f"{console.url}/login",
        form={"token": console.tokens["read"]},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "set-cookie" not in forged.headers

"""People in the console, in headless chromium against the real hub (both engines): a setup
link, a password sign-in, an acknowledgement that the journal keeps, and a lockout that only
``edge-hub user unlock`` (or time) lifts. Waits are on the DOM, never sleeps."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from hub.cli import main
from shared.timeutil import now
from tests.web.conftest import ENGINES, KEY, Console, high_alarm, running_console, session_cookies

PASSWORD = "correct horse battery staple"
WRONG = "The user name or password is wrong."


def cli(console: Console, *args: str, stdin: str = "") -> str:
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = main([*args, "--config", str(console.hub.config)], stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    assert code == 0, err.getvalue()
    return out.getvalue().strip()


def expected_load_error(console: Console, status: int) -> None:
    """Take the one failed load a step provoked on purpose out of the page errors."""
    failed = [e for e in console.errors if f"status of {status} " in e]
    assert len(failed) == 1, console.errors
    console.errors.remove(failed[0])


@pytest.fixture(params=ENGINES)
def lockout(request: pytest.FixtureRequest, tmp_path: Path, browser: Browser) -> Iterator[Console]:
    with running_console(request, tmp_path, browser, "lockout_failures = 3\n") as found:
        yield found


def test_a_person_sets_a_password_signs_in_and_acknowledges(console: Console) -> None:
    console.ingest([(now() - 60, 97.5)], alerts=[high_alarm()])
    link = cli(console, "user", "add", "Anna", "--role", "operator", "--display", "Anna Berg")
    page = console.page()
    page.goto(link)
    expect(page.locator("#setup-user")).to_have_text("Anna")
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.click("#setup-form button[type=submit]")
    expect(page.locator("#password-error")).to_contain_text("at least 12 characters")
    expected_load_error(console, 400)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("#setup-form button[type=submit]")
    page.wait_for_url(f"{console.url}/")
    expect(page.locator("#person")).to_have_text("Anna Berg")
    # The link is spent.
    page.goto(link)
    expect(page.locator("#setup-error")).to_contain_text("already used or expired")
    expected_load_error(console, 404)

    # Signed out, then in again with the name (any case) and the password.
    page.goto(f"{console.url}/")
    page.click("header >> text=Sign out")
    page.wait_for_url(f"{console.url}/login")
    assert session_cookies(page) == []
    console.sign_in_person("anna", PASSWORD, page)
    page.wait_for_url(f"{console.url}/")
    expect(page.locator("#role")).to_have_text("operator")
    (cookie,) = session_cookies(page)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"

    page.click("nav >> text=Alerts")
    row = page.locator("#alerts-active tr").filter(has_text=KEY)
    expect(row).to_contain_text("active")
    row.locator("input[name=comment]").fill("checked on site")
    row.locator("button[data-action=ack]").click()
    expect(row.locator("td.state")).to_contain_text("acknowledged by Anna Berg (operator)")
    row.locator("details[data-journal] summary").click()
    # Who acted: the person by their display name, with their role (no token of theirs).
    expect(row.locator("ol.journal li").last).to_contain_text("by Anna Berg (operator)")
    expect(row.locator("ol.journal li").last).to_contain_text("checked on site")
    console.shot(page, "people-alerts")
    with console.api("admin") as c:
        rows = c.get("/api/v1/audit", params={"target": "user"}).raise_for_status().json()
    assert [(r["action"], r["target_id"]) for r in rows["data"]][:2] == [
        ("user.sign_in", "Anna"),
        ("user.sign_in", "Anna"),
    ]
    by = rows["data"][0]["by"]
    assert (by["kind"], by["name"], by["display"], by["role"]) == (
        "user",
        "Anna",
        "Anna Berg",
        "operator",
    )
    with console.api("read") as c:
        alert = c.get("/api/v1/alerts", params={"state": "active"}).raise_for_status().json()
    (acked,) = [a for a in alert["data"] if a["acknowledged"]]
    assert acked["acknowledged_by"]["display"] == "Anna Berg"
    assert acked["acknowledged_by"]["kind"] == "user"


def test_a_locked_out_person_signs_in_only_after_an_admin_unlocks(lockout: Console) -> None:
    console = lockout
    cli(console, "user", "add", "carl", "--role", "read", "--password-stdin", stdin=PASSWORD)
    page = console.page()
    for _ in range(3):
        console.sign_in_person("carl", "not my password", page)
        expect(page.locator("#login-error")).to_have_text(WRONG)
    # Locked: the right password reads exactly like a wrong one.
    console.sign_in_person("carl", PASSWORD, page)
    expect(page.locator("#login-error")).to_have_text(WRONG)
    assert page.url == f"{console.url}/login"
    assert session_cookies(page) == []
    cli(console, "user", "unlock", "carl")
    console.sign_in_person("carl", PASSWORD, page)
    page.wait_for_url(f"{console.url}/")
    expect(page.locator("#role")).to_have_text("read")
    expect(page.locator('#fleet tr[data-gateway="gw-01"]')).to_be_visible()

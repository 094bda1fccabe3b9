"""Single sign-on against a real OpenID provider (its own process), on both engines: in
headless chromium a person in a group mapped to operator signs in and acknowledges an
alert; over httpx (the browser's steps, one by one) a person in no mapped group, a forged
state, an expired ID token and an ID token for another audience are refused, each with an
audit row, and none of them gets a session or an account."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, expect

from devtools.stack import Hub
from shared.timeutil import now
from tests.web.conftest import ENGINES, KEY, Console, high_alarm, running_console
from tests.web.oidc_provider import OidcProvider

# The provider's own form page (not the hub's) links a stylesheet on a CDN: the browser gets
# an empty one from the test, so nothing reaches the internet and no page logs a failure.
PROVIDER_CSS = "https://cdn.jsdelivr.net/npm/@picocss/"
GROUPS = {
    "line-operators": ("operator", ["plant-1"]),
    "viewers": ("read", []),
    # A mapping mistake: the factory does not exist (found at sign-in, named on the page).
    "ghost-plant": ("operator", ["no-such-plant"]),
}


@dataclass
class Sso:
    console: Console
    provider: OidcProvider


def oidc_config(provider: OidcProvider) -> Callable[[Hub], str]:
    def extra(hub: Hub) -> str:
        lines = [
            "[oidc]",
            f'issuer = "{provider.url}"',
            'client_id = "edge-hub"',
            'client_secret = "a-secret-of-the-hub"',
            f'redirect_url = "{hub.url}/auth/oidc/callback"',
            'name = "Plant Login"',
        ]
        for group, (role, factories) in GROUPS.items():
            listed = ", ".join(f'"{f}"' for f in factories)
            lines += [f'[oidc.groups."{group}"]', f'role = "{role}"', f"factories = [{listed}]"]
        return "\n".join(lines) + "\n"

    return extra


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    found = OidcProvider(tmp_path_factory.mktemp("oidc")).start()
    yield found
    found.stop()


@pytest.fixture(params=ENGINES)
def sso(
    request: pytest.FixtureRequest, tmp_path: Path, browser: Browser, provider: OidcProvider
) -> Iterator[Sso]:
    def check(console: Console) -> None:
        # As check_clean, with the provider's sign-in form as the one other origin (and
        # the stylesheet that form links, answered empty by the test: see PROVIDER_CSS).
        allowed = (console.url + "/", provider.url + "/", PROVIDER_CSS)
        strays = [u for u in console.requests if not u.startswith(allowed)]
        assert not strays, f"requests left the hub and its provider: {strays}"
        assert not console.errors, f"the pages logged errors: {console.errors}"

    with running_console(request, tmp_path, browser, oidc_config(provider), check) as found:
        yield Sso(found, provider)


def audit(console: Console) -> list[dict[str, object]]:
    with console.api("admin") as c:
        r = c.get("/api/v1/audit", params={"target": "user", "limit": 500}).raise_for_status()
    return list(r.json()["data"])


def users(console: Console) -> dict[str, dict[str, object]]:
    """Every account, by name, as ``edge-hub user list --json`` shows it."""
    return {u["name"]: u for u in json.loads(console.hub.cli("user", "list", "--json"))}


def start(console: Console) -> tuple[httpx.Client, str]:
    """A browser's first step: the hub's sign-in link; (the browser, the provider's URL)."""
    browser = httpx.Client(base_url=console.url, timeout=10)
    r = browser.get("/auth/oidc/login")
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/auth/oidc" in cookie
    return browser, r.headers["location"]


def test_a_person_in_an_operator_group_signs_in_and_acknowledges(sso: Sso) -> None:
    console = sso.console
    console.ingest([(now() - 60, 97.5)], alerts=[high_alarm()])
    sso.provider.person(
        "anna-sub-1", preferred_username="anna", name="Anna Berg", groups=["line-operators"]
    )
    page = console.page()
    page.context.route(
        f"{PROVIDER_CSS}**", lambda route: route.fulfill(status=200, content_type="text/css")
    )
    page.goto(f"{console.url}/login")
    link = page.locator("#oidc-sign-in")
    expect(link).to_have_text("Sign in with Plant Login")
    link.click()
    page.wait_for_url(f"{sso.provider.url}/**")
    page.fill("input[name=sub]", "anna-sub-1")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{console.url}/")
    expect(page.locator("#person")).to_have_text("Anna Berg")
    expect(page.locator("#role")).to_have_text("operator")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "edge_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"

    page.click("nav >> text=Alerts")
    row = page.locator("#alerts-active tr").filter(has_text=KEY)
    row.locator("input[name=comment]").fill("seen on the line")
    row.locator("button[data-action=ack]").click()
    expect(row.locator("td.state")).to_contain_text("acknowledged by Anna Berg (operator)")

    rows = [(r["action"], r["target_id"], r["detail"]) for r in audit(console)]
    assert rows[0][:2] == ("user.sign_in", "anna")
    assert rows[0][2]["method"] == "oidc"  # type: ignore[index]
    anna = users(console)["anna"]
    assert (anna["role"], anna["factories"], anna["display"]) == (
        "operator",
        ["plant-1"],
        "Anna Berg",
    )


def test_refusals_leave_no_session_and_are_audited(sso: Sso) -> None:
    console, provider = sso.console, sso.provider

    # In no mapped group: refused, never let in as read.
    provider.person("bob-sub", preferred_username="bob", groups=["visitors"])
    browser, url = start(console)
    r = browser.get(provider.authorize(url, "bob-sub"))
    assert r.status_code == 403
    assert "not in any group this hub lets in" in r.text
    assert "edge_session" not in browser.cookies

    # A forged state: refused, and the sign-in under way is spent (the true state fails too).
    provider.person("carl-sub", preferred_username="carl", groups=["viewers"])
    browser, url = start(console)
    back = urlsplit(provider.authorize(url, "carl-sub"))
    query = parse_qs(back.query)
    forged = {"code": query["code"][0], "state": "forged-state"}
    r = browser.get(f"{back.path}?{urlencode(forged)}")
    assert r.status_code == 400
    assert "does not match" in r.text
    r = browser.get(f"{back.path}?{back.query}")
    assert r.status_code == 400
    assert "edge_session" not in browser.cookies

    # A callback with no sign-in under way in this browser (another browser's answer).
    browser, url = start(console)
    back = urlsplit(provider.authorize(url, "carl-sub"))
    stranger = httpx.Client(base_url=console.url, timeout=10)
    assert stranger.get(f"{back.path}?{back.query}").status_code == 400

    # An ID token the provider signed with an expiry an hour ago.
    provider.person(
        "dora-sub", preferred_username="dora", groups=["viewers"], exp=int(now()) - 3600
    )
    browser, url = start(console)
    r = browser.get(provider.authorize(url, "dora-sub"))
    assert r.status_code == 401
    assert "edge_session" not in browser.cookies

    # An ID token for another client.
    provider.person("eve-sub", preferred_username="eve", groups=["viewers"], aud="another-app")
    browser, url = start(console)
    r = browser.get(provider.authorize(url, "eve-sub"))
    assert r.status_code == 401
    assert "edge_session" not in browser.cookies

    # A group mapped to a factory the hub does not have.
    provider.person("finn-sub", preferred_username="finn", groups=["ghost-plant"])
    browser, url = start(console)
    r = browser.get(provider.authorize(url, "finn-sub"))
    assert r.status_code == 403
    assert "no-such-plant" in r.text and "[oidc.groups]" in r.text
    assert "edge_session" not in browser.cookies

    # The same flow for a person in a mapped group signs in: the refusals were the claims.
    signed_in, url = start(console)
    r = signed_in.get(provider.authorize(url, "carl-sub"))
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "edge_session" in signed_in.cookies
    assert signed_in.get("/").status_code == 200

    # Taken out of the group at the provider: refused at the next sign-in, and the session
    # signed in before ends with it.
    provider.person("carl-sub", preferred_username="carl", groups=["visitors"])
    browser, url = start(console)
    assert browser.get(provider.authorize(url, "carl-sub")).status_code == 403
    r = signed_in.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"

    failed = [
        (r["target_id"], str(r["detail"]["reason"]))  # type: ignore[index]
        for r in audit(console)
        if r["action"] == "user.sign_in_failed"
    ]
    reasons = [reason for _, reason in reversed(failed)]
    assert reasons[0].startswith("no mapped group") and failed[-1][0] == "bob"
    assert reasons[1:4] == ["state mismatch", "no sign-in under way", "no sign-in under way"]
    assert "exp" in reasons[4] or "expired" in reasons[4]
    assert "aud" in reasons[5]
    assert reasons[6].startswith("unknown factory") and "no-such-plant" in reasons[6]
    assert reasons[7].startswith("no mapped group") and failed[0][0] == "carl"
    assert sorted(users(console)) == ["carl"]

"""The operator console in a real browser: Debian's chromium, headless, driven by Playwright
for Python (never Playwright's own browser downloads: ``executable_path`` is the system's),
against the real edge-hub process on SQLite or PostgreSQL, fed through the real ingest API.

Every page opened through :class:`Console` records every request the browser makes and each
console message: at the end of each test no request may have left the hub's origin and no
page may have logged an error (a Content-Security-Policy violation is one).

``UPDATE_SCREENSHOTS=1`` saves what :meth:`Console.shot` is asked for to docs/screenshots/.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from devtools.stack import REPO, Hub
from shared.timeutil import now
from shared.wire import Batch, WireAlert, WireReading, encode_batch
from tests.edge_alerts import threshold_alert
from tests.pg import PgServer

SCREENSHOTS = REPO / "docs" / "screenshots"
# Playwright's 5 s default for expect() is a speed assumption: on a loaded 2-core machine a
# page reload plus the request it makes can take longer. The waits still end on the event.
expect.set_options(timeout=20_000)
KEY = "line1/press/temp"
ENGINES = ["sqlite", "postgresql"]
_EXPECTED_4XX = re.compile(
    r"Failed to load resource: the server responded with a status of 4(01|03|09)"
)


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError(
            "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        )
    return found


# Per module, not per session: while Playwright's sync API is alive it marks its event loop
# as running in this thread, and an asyncio test that a worker of `pytest -n` runs after a
# console module would then refuse to start ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    found = playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
    )
    yield found
    found.close()


@pytest.fixture(scope="session")
def web_pg(pg_server: PgServer) -> PgServer:
    """The session's PostgreSQL server (tests/conftest.py): each console makes its database."""
    return pg_server


@dataclass
class Console:
    """A real hub with tokens of each role, and browser pages that record their requests."""

    hub: Hub
    browser: Browser
    tokens: dict[str, str]
    gateway_token: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return self.hub.url

    def api(self, role: str = "admin") -> httpx.Client:
        return self.hub.client(self.tokens[role])

    def token_id(self, role: str) -> int:
        return int(self.tokens[f"{role}_id"])

    def ingest(
        self,
        readings: list[tuple[float, float]] | None = None,
        alerts: list[WireAlert] | None = None,
        gateway: str = "gw-01",
        key: str = KEY,
        **report: Any,
    ) -> dict[str, Any]:
        """POST one sync batch through the real ingest API, as the agent does."""
        wire = [WireReading(next(self._seq), key, ts, value, "C") for ts, value in readings or []]
        batch = Batch(
            gateway_id=gateway, readings=wire, alerts=alerts or [], sent_at=now(), **report
        )
        r = httpx.post(
            f"{self.url}/api/v1/ingest",
            content=encode_batch(batch),
            headers={
                "Authorization": f"Bearer {self.gateway_token}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
            },
            timeout=30,
        )
        r.raise_for_status()
        return dict(r.json()["data"])

    def sensor_id(self, key: str = KEY) -> int:
        with self.api("read") as c:
            rows = c.get("/api/v1/sensors", params={"key": key}).raise_for_status().json()["data"]
        return int(rows[0]["id"])

    def page(self, **options: Any) -> Page:
        context = self.browser.new_context(viewport={"width": 1280, "height": 860}, **options)
        context.on("request", lambda request: self.requests.append(request.url))
        self.contexts.append(context)
        return self.tab(context)

    def tab(self, context: BrowserContext) -> Page:
        """Another page of the same browser (the same session cookie), watched the same."""
        page = context.new_page()
        page.on("console", self._console_message)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def _console_message(self, msg: Any) -> None:
        # A 4xx a test provokes on purpose (a wrong token, a refused POST) is logged by
        # chromium as a failed load; anything else logged as an error is a fault of the page
        # (a script error, a Content-Security-Policy violation, a 5xx).
        if msg.type == "error" and not _EXPECTED_4XX.match(msg.text):
            self.errors.append(msg.text)

    def sign_in(self, role: str, page: Page | None = None) -> Page:
        page = page or self.page()
        page.goto(f"{self.url}/login")
        page.fill("#token", self.tokens[role])
        page.click("#token-form button[type=submit]")
        page.wait_for_url(f"{self.url}/")
        return page

    def sign_in_person(self, name: str, password: str, page: Page | None = None) -> Page:
        """Sign in with a name and password; the page is left where the hub sent it."""
        page = page or self.page()
        page.goto(f"{self.url}/login")
        page.fill("#name", name)
        page.fill("#password", password)
        page.click("#password-form button[type=submit]")
        page.wait_for_load_state()
        return page

    def shot(self, page: Page, name: str) -> None:
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def session_cookies(page: Page) -> list[Any]:
    """The browser's session cookies (the sign-in form's own ``edge_signin`` left out)."""
    return [c for c in page.context.cookies() if c["name"] == "edge_session"]


def start_console(
    engine: str,
    workdir: Path,
    browser: Browser,
    pg: PgServer | None,
    extra: str | Callable[[Hub], str] = "",
) -> Console:
    """A console on a new hub; ``extra``: more hub.toml after ``[console]`` (or what makes it
    from the hub, for settings that name the hub's own URL)."""
    database = None
    if engine == "postgresql":
        assert pg is not None
        database = pg.create_database()
    hub = Hub(workdir, database=database)
    config = hub.config.read_text()
    extra = extra(hub) if callable(extra) else extra
    # Pages poll fast here so a live update shows within a test's patience, not five seconds.
    hub.config.write_text(
        config + 'log_level = "warning"\n' + "[console]\npoll_interval_s = 0.3\n" + extra
    )
    gateway_token = hub.add_gateway("gw-01")
    hub.add_gateway("gw-02")
    tokens: dict[str, str] = {}
    for role in ("read", "operator", "admin"):
        tokens[role] = hub.cli("token", "add", "--role", role)
    hub.start()
    listed = {t["role"]: t["id"] for t in _tokens(hub)}
    for role in ("read", "operator", "admin"):
        tokens[f"{role}_id"] = str(listed[role])
    return Console(hub, browser, tokens, gateway_token)


def _tokens(hub: Hub) -> list[dict[str, Any]]:
    return list(json.loads(hub.cli("token", "list", "--json")))


def high_alarm(alert_id: int = 1, opened_at: float | None = None) -> WireAlert:
    """A high alarm of the edge on ``KEY`` (97.5 above 80), opened a minute ago unless told:
    recent, so the hub's stale mark (a day) never reaches it during a test."""
    return threshold_alert(
        KEY, opened_at or now() - 60, alert_id=alert_id, severity="high", value=97.5
    )


@contextmanager
def running_console(
    request: pytest.FixtureRequest,
    workdir: Path,
    browser: Browser,
    extra: str | Callable[[Hub], str] = "",
    check: Callable[[Console], None] | None = None,
) -> Iterator[Console]:
    """A console on the engine ``request.param`` names, for a fixture to yield: after the
    test ``check`` (default :func:`check_clean`) runs on it, and it is closed and its hub
    stopped whatever happened."""
    pg = request.getfixturevalue("web_pg") if request.param == "postgresql" else None
    found = start_console(request.param, workdir, browser, pg, extra)
    try:
        yield found
        (check or check_clean)(found)
    finally:
        found.close()
        found.hub.stop()


@pytest.fixture(params=ENGINES)
def console(request: pytest.FixtureRequest, tmp_path: Path, browser: Browser) -> Iterator[Console]:
    with running_console(request, tmp_path, browser) as found:
        yield found


def refused(console: Console, status: int) -> None:
    """Take the failed loads a step provoked on purpose (a refused form or action) out of the
    errors the pages logged."""
    failed = [e for e in console.errors if f"status of {status} " in e]
    assert failed, console.errors
    for e in failed:
        console.errors.remove(e)


def check_clean(console: Console) -> None:
    """No request left the hub's origin; no page logged an error."""
    origin = console.url + "/"
    strays = [u for u in console.requests if not u.startswith(origin)]
    assert console.requests, "no request recorded"
    assert not strays, f"requests left the hub's origin: {strays}"
    assert not console.errors, f"the pages logged errors: {console.errors}"

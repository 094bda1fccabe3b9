"""Rows: the operator console's sensor page in headless chromium against the real hub.

Data: one sensor with a year of readings (10M by default), loaded by the history bench's
loader (bench.history: the storage's own batch path, rollups folded as ingest does), on
SQLite, the hub's default engine.

* First render of the sensor page with a 30-day chart: a fresh browser context (empty
  cache) signs in and opens ``/sensors/ID#from=..&to=..`` (the last 30 days of data); the
  value is the
  page's own ``performance.mark("chart-drawn")``, set after the first answer of
  ``series?points=`` is drawn, in ms from the start of navigation. Median of ``rounds``
  page loads after one warm-up. Baseline: the same page with a 1-hour chart, same run.
* Page weight: the bytes of every response that first render needed (HTML, CSS, JS, icon,
  and the JSON of the chart and the page's first refresh). Baseline: the 30 days of raw
  readings as ``/readings`` JSON would be, what a chart drawing raw points would download.
* One password sign-in: ``POST /login`` with a person's name and password, over HTTP from a
  client that loaded the sign-in page first (its form token), until the 303 with the session
  cookie; median of ``rounds``. Most of it is the argon2id check (hub.passwords). Baseline: a
  token's sign-in the same way (a SHA-256 lookup). Beside it, the same post with a name no
  account has, which must cost the same (one argon2 check against a dummy hash).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import statistics
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Response, sync_playwright

from bench.common import Row
from bench.history import KEY, REPORT, YEAR_S, _batches, _hub, _register, _wait_measured
from hub.passwords import hash_password
from hub.storage import open_storage
from hub.storage.changelog import SYSTEM
from hub.user_names import name_key

DAY = 86400.0
GOAL_MS = 500.0


def _load(database: str, n: int) -> tuple[int, float, float]:
    t_end = math.floor(time.time() / 3600) * 3600 - 1800.5
    storage = open_storage(database)
    try:
        started = time.perf_counter()
        gateway, factory = _register(storage)
        for batch in _batches(n, t_end - YEAR_S):
            storage.store_batch(gateway, factory, batch, REPORT)
        load_s = time.perf_counter() - started
        sensor = int(storage.list_sensors(key=KEY)[0]["id"])
    finally:
        storage.close()
    return sensor, load_s, t_end


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    return found


def _render(browser: Browser, url: str, token: str, path: str) -> tuple[float, int]:
    """(ms to the first chart-drawn mark, bytes of every response of that render)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        page = context.new_page()
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.click("#token-form button[type=submit]")
        page.wait_for_url(f"{url}/")
        sizes: list[int] = []

        def count(response: Response) -> None:
            try:
                sizes.append(len(response.body()))
            except Exception:  # a redirect has no body
                sizes.append(0)

        page.on("response", count)
        page.goto(f"{url}{path}")
        page.locator("#chart[data-drawn]").wait_for(state="attached", timeout=60_000)
        page.locator("body[data-refreshes]").wait_for(state="attached", timeout=60_000)
        mark = page.evaluate("performance.getEntriesByName('chart-drawn')[0].startTime")
        page.remove_listener("response", count)
        return float(mark), sum(sizes)
    finally:
        context.close()


PASSWORD = "bench passphrase, long enough"


def _sign_in_ms(url: str, fields: dict[str, str], expect: int, address: str) -> float:
    """ms of one POST /login (after the page that gives the form its token)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get("/login").text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        data = {**fields, "csrf_token": token} if "name" in fields else fields
        started = time.perf_counter()
        r = client.post("/login", data=data, headers={"X-Real-IP": address})
        ms = (time.perf_counter() - started) * 1000
    if r.status_code != expect:
        raise RuntimeError(f"sign-in answered {r.status_code}, not {expect}: {r.text[:200]}")
    return ms


def _sign_in_row(url: str, token: str, rounds: int) -> Row:
    # Each try from an address of its own and an unknown name never tried before: the
    # sign-in throttle is not what is measured.
    tries = itertools.count(1)

    def median(fields: dict[str, str], expect: int) -> tuple[float, list[float]]:
        runs = []
        for _ in range(rounds + 1):  # the first is a warm-up
            n = next(tries)
            named = {k: v.replace("{n}", str(n)) for k, v in fields.items()}
            runs.append(_sign_in_ms(url, named, expect, f"198.18.{n // 250}.{n % 250}"))
        return statistics.median(runs[1:]), runs[1:]

    password_ms, runs = median({"name": "bench", "password": PASSWORD}, 303)
    unknown_ms, _ = median({"name": "nobody{n}", "password": PASSWORD}, 401)
    token_ms, _ = median({"token": token}, 303)
    return Row(
        "console: one password sign-in (POST /login to the session cookie)",
        password_ms,
        "ms",
        "a token's sign-in",
        token_ms,
        "< 1000 ms",
        f"over HTTP, median of {rounds}; argon2id 64 MiB, 3 passes; "
        f"an unknown name {unknown_ms:.0f} ms (the same work)",
        {
            "median_ms": round(password_ms, 1),
            "runs_ms": [round(ms, 1) for ms in runs],
            "unknown_name_ms": round(unknown_ms, 1),
            "token_ms": round(token_ms, 1),
        },
    )


def run(workdir: Path, n: int = 10_000_000, rounds: int = 9) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{workdir / 'console.db'}"
    sensor, load_s, t_end = _load(database, n)
    with contextlib.closing(open_storage(database)) as storage:
        storage.users.add(
            "bench",
            name_key("bench"),
            role="read",
            password_hash=hash_password(PASSWORD),
            by=SYSTEM,
        )
    rows: list[Row] = []
    with _hub(workdir / "hub-console", database) as hub:
        token = hub.cli("token", "add", "--role", "read")
        sign_in = _sign_in_row(hub.url, token, rounds)
        with hub.client(token) as c:
            _wait_measured(c)
            stats = c.get(
                f"/api/v1/sensors/{sensor}/stats", params={"from": t_end - 30 * DAY, "to": t_end}
            ).json()["data"]
            sample = c.get(f"/api/v1/sensors/{sensor}/readings", params={"limit": 1000}).content
        raw_bytes = stats["count"] * len(sample) / 1000
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(), headless=True, args=["--no-sandbox"]
            )
            try:
                results: dict[str, list[tuple[float, int]]] = {}
                for name, span in (("30d", 30 * DAY), ("1h", 3600.0)):
                    # Up to the newest reading: a view that ends there and does not follow
                    # "now" is drawn once, not again at each refresh.
                    path = f"/sensors/{sensor}#from={t_end - span}&to={t_end + 1}"
                    _render(browser, hub.url, token, path)  # warm-up
                    results[name] = [_render(browser, hub.url, token, path) for _ in range(rounds)]
            finally:
                browser.close()
    month_ms = statistics.median(ms for ms, _ in results["30d"])
    hour_ms = statistics.median(ms for ms, _ in results["1h"])
    weight = statistics.median(b for _, b in results["30d"])
    rows.append(
        Row(
            "console: sensor page, 30-day chart drawn",
            month_ms,
            "ms",
            "the same page with a 1-hour chart",
            hour_ms,
            f"< {GOAL_MS:.0f} ms",
            f"headless chromium, fresh context per load, median of {rounds}; "
            f"{n:,} readings over a year (load {load_s:.0f} s); "
            f"{'met' if month_ms < GOAL_MS else 'NOT met'}",
            {
                "median_ms": round(month_ms, 1),
                "runs_ms": [round(ms, 1) for ms, _ in results["30d"]],
                "hour_median_ms": round(hour_ms, 1),
                "readings": n,
                "met": month_ms < GOAL_MS,
            },
        )
    )
    rows.append(
        Row(
            "console: sensor page weight (30-day chart)",
            weight,
            "bytes",
            "the 30 days as raw readings JSON",
            raw_bytes,
            "much smaller than the raw data",
            "HTML + CSS + JS + icon + the chart's series?points= JSON + the first refresh; "
            f"raw: {stats['count']:,} readings x {len(sample) / 1000:.0f} bytes each",
            {"bytes": weight, "raw_bytes": round(raw_bytes), "raw_readings": stats["count"]},
        )
    )
    rows.append(sign_in)
    return rows

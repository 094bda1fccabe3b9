"""The operator console in headless chromium against the real hub (both engines): sign-in,
the fleet, factory -> machine -> sensor, the chart over a range, an ack through the UI,
live updates, roles and CSRF on the server, sign-out. Waits are on the DOM, never sleeps."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from shared.timeutil import now
from shared.wire import WireAlert
from tests.web.conftest import KEY, Console, session_cookies

HOUR = 3600.0


def _alert(alert_id: int, value: float = 97.5, opened_at: float | None = None) -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=KEY,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=80.0,
        value=value,
        opened_at=opened_at or now() - 60,
    )


def _hub_alert_ids(console: Console) -> list[int]:
    with console.api("read") as c:
        rows = c.get("/api/v1/alerts").raise_for_status().json()["data"]
    return [int(r["id"]) for r in rows]


def test_sign_in_keeps_the_token_out_of_urls_and_storage_and_shows_the_fleet(
    console: Console,
) -> None:
    t = now()
    console.ingest(
        [(t - 30, 20.5)], backlog=12, dropped=3, dead_letters=2, agent_version="0.1.0-test"
    )
    page = console.page()
    page.goto(f"{console.url}/")
    page.wait_for_url(f"{console.url}/login")  # no session: the sign-in page
    console.shot(page, "sign-in")
    console.sign_in("read", page)

    row = page.locator('#fleet tr[data-gateway="gw-01"]')
    expect(row).to_contain_text("online")
    cells = row.locator("td")
    expect(cells.nth(4)).to_have_text("12")
    expect(cells.nth(5)).to_have_text("3")
    expect(cells.nth(6)).to_have_text("2")
    expect(cells.nth(7)).to_have_text("0.1.0-test")
    expect(page.locator('#fleet tr[data-gateway="gw-02"]')).to_contain_text("never seen")
    expect(page.locator("#role")).to_have_text("read")

    # The cookie is HttpOnly and SameSite=Strict; no script sees it, and the token itself is
    # in no URL the browser asked for and in neither web storage.
    (cookie,) = session_cookies(page)
    assert cookie["name"] == "edge_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    token = console.tokens["read"]
    assert not [u for u in console.requests if token in u]
    stored = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    assert stored == "[[],[]]"
    assert token not in page.content()


def test_a_wrong_or_gateway_token_does_not_sign_in(console: Console) -> None:
    page = console.page()
    page.goto(f"{console.url}/login")
    page.fill("#token", "fer_not-a-real-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
    page.fill("#token", console.gateway_token)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("gateway")
    assert session_cookies(page) == []
    # Pages and the API without a session: back to sign-in, 401.
    page.goto(f"{console.url}/alerts")
    page.wait_for_url(f"{console.url}/login")
    assert page.request.get(f"{console.url}/api/v1/gateways").status == 401


def test_factory_machine_sensor(console: Console) -> None:
    t = now()
    console.ingest([(t - 120 + i, 40.0 + i) for i in range(100)])
    page = console.sign_in("read")
    page.click("nav >> text=Plant")
    page.click("#factories >> text=plant-1")
    expect(page.locator("#title")).to_have_text("plant-1")
    page.click("#machines >> text=press")
    expect(page.locator("#title")).to_have_text("press")
    expect(page.locator("#sensors")).to_contain_text(KEY)
    page.click("#sensors >> text=temp")
    expect(page.locator("#title")).to_have_text(f"temp ({KEY})")
    expect(page.locator("#latest-value")).to_have_text("139")
    expect(page.locator("#crumbs")).to_contain_text("plant-1 \u203a press \u203a temp")


def _series_asked(console: Console) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(u).query)
        for u in console.requests
        if re.search(r"/api/v1/sensors/\d+/series\?", u)
    ]


def _drawn(page: Page, count: int) -> dict[str, Any]:
    # Waits through the DOM: the page's CSP (no eval) rules out wait_for_function.
    expect(page.locator("#chart")).to_have_attribute("data-drawn", str(count))
    return dict(page.evaluate("({...document.getElementById('chart').dataset})"))


def test_the_chart_over_a_range_draws_what_series_points_answers(console: Console) -> None:
    end = (now() // HOUR) * HOUR - HOUR
    start = end - 3 * 86400
    # Three days at one reading a minute, a day-long sine: 4,320 readings.
    readings = [(start + i * 60.0, 50.0 + (i % 1440) / 40.0) for i in range(4320)]
    for first in range(0, len(readings), 1000):
        console.ingest(readings[first : first + 1000])
    sensor = console.sensor_id()
    with console.api("admin") as c:  # drawn as dashed lines; the data is what counts
        limits = {"min": 52, "max": 84}
        c.put(f"/api/v1/sensors/{sensor}/thresholds", json=limits).raise_for_status()
    page = console.sign_in("admin")
    page.goto(f"{console.url}/sensors/{sensor}#from={start}&to={end}")
    state = _drawn(page, 1)
    asked = _series_asked(console)[-1]
    width = page.evaluate("document.getElementById('chart').clientWidth")
    points = int(asked["points"][0])
    assert 0 < points <= width  # one bucket per pixel column of the plot at most
    assert float(asked["from"][0]) == start and float(asked["to"][0]) == end
    # What the chart holds is exactly what the API answers for that request.
    answer = page.request.get(f"{console.url}{state['path']}").json()
    drawn = page.evaluate("window.edgeChart.state.data")
    assert drawn == answer["data"]
    assert 0 < len(drawn) <= points
    assert sum(b["count"] for b in drawn) == 4320
    expect(page.locator("#thresholds-view")).to_contain_text("max 84")
    console.shot(page, "sensor")

    # Wheel zoom: a narrower range, asked again with points=.
    box = page.locator("#chart").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    zoomed = _drawn(page, 2)
    z_from, z_to = float(zoomed["from"]), float(zoomed["to"])
    assert z_to - z_from < end - start
    assert start < z_from < z_to < end
    assert "points" in _series_asked(console)[-1]
    # Drag pans: the same span, earlier.
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 200, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    panned = _drawn(page, 3)
    p_from, p_to = float(panned["from"]), float(panned["to"])
    assert p_from < z_from
    assert abs((p_to - p_from) - (z_to - z_from)) < 1e-3 * (z_to - z_from)
    assert (
        page.evaluate("window.edgeChart.state.data")
        == (page.request.get(f"{console.url}{panned['path']}").json()["data"])
    )


def test_an_operator_acknowledges_through_the_ui_and_the_journal_names_them(
    console: Console,
) -> None:
    console.ingest([(now() - 60, 97.5)], alerts=[_alert(1)])
    (alert_id,) = _hub_alert_ids(console)
    page = console.sign_in("operator")
    page.click("nav >> text=Alerts")
    row = page.locator(f'#alerts-active tr[data-alert="{alert_id}"]')
    expect(row).to_contain_text("active")
    expect(row).to_contain_text(KEY)
    row.locator("input[name=comment]").fill("valve checked, reading is real")
    row.locator("button[data-action=ack]").click()
    expect(row.locator("td.state")).to_contain_text("acknowledged by operator")
    expect(row.locator("button[data-action=ack]")).to_have_count(0)

    with console.api("admin") as c:
        alert = c.get(f"/api/v1/alerts/{alert_id}").raise_for_status().json()["data"]
    assert alert["acknowledged"] is True
    operator = {
        "kind": "token",
        "name": None,
        "display": None,
        "role": "operator",
        "token_id": console.token_id("operator"),
    }
    assert alert["acknowledged_by"] == operator
    acks = [e for e in alert["journal"] if e["action"] in ("ack", "acknowledge", "acknowledged")]
    assert len(acks) == 1
    assert acks[0]["by"] == operator
    assert acks[0]["comment"] == "valve checked, reading is real"

    # Its history on the page says the same.
    row.locator("details[data-journal] summary").click()
    history = row.locator("ol.journal li")
    expect(history.last).to_contain_text(
        f"by operator #{console.token_id('operator')}: valve checked, reading is real"
    )
    row.locator("details[data-journal] summary").click()  # closed: the row refreshes again
    # Shelve the same alert for an hour, with a comment: it moves to the shelved list.
    row.locator("input[name=comment]").fill("maintenance today")
    row.locator("select[name=duration_s]").select_option("3600")
    row.locator("button[data-action=shelve]").click()
    shelved = page.locator(f'#alerts-shelved tr[data-alert="{alert_id}"]')
    expect(shelved.locator("td.state")).to_contain_text("shelved until")
    with console.api("read") as c:
        alert = c.get(f"/api/v1/alerts/{alert_id}").raise_for_status().json()["data"]
    assert alert["shelved"] is True
    assert alert["journal"][-1]["comment"] == "maintenance today"


def test_an_alert_of_a_sensor_out_of_service_says_so_without_a_reload(console: Console) -> None:
    console.ingest([(now() - 60, 97.5)], alerts=[_alert(1)])
    (alert_id,) = _hub_alert_ids(console)
    page = console.sign_in("operator")
    page.click("nav >> text=Alerts")
    state = page.locator(f'#alerts-active tr[data-alert="{alert_id}"] td.state')
    expect(state).to_contain_text("active")
    path = f"/api/v1/sensors/{console.sensor_id()}"
    with console.api("operator") as c:
        c.post(f"{path}/out-of-service", json={"comment": "recalibration"}).raise_for_status()
        expect(state).to_contain_text("out of service: recalibration")
        c.post(f"{path}/in-service", json={}).raise_for_status()
    expect(state).not_to_contain_text("out of service")


def test_new_data_and_alerts_appear_without_a_reload(console: Console) -> None:
    t = now()
    console.ingest([(t - 100, 21.0)])
    sensor = console.sensor_id()
    page = console.sign_in("operator")
    alerts = console.tab(page.context)
    alerts.goto(f"{console.url}/alerts")
    page.goto(f"{console.url}/sensors/{sensor}")
    expect(page.locator("#latest-value")).to_have_text("21")
    expect(page.locator("#chart")).to_have_attribute("data-max", "21")
    loads = page.evaluate("performance.getEntriesByType('navigation').length")

    console.ingest([(t - 5, 88.25)], alerts=[_alert(7, value=88.25, opened_at=t - 5)])
    expect(page.locator("#latest-value")).to_have_text("88.25")
    (alert_id,) = _hub_alert_ids(console)
    row = page.locator(f'#sensor-alerts tr[data-alert="{alert_id}"]')
    expect(row).to_be_visible()
    # The sensor's own alarm rows read as the alarm table's: clear time, duration and peak.
    expect(row.locator("td.cleared")).to_have_text("\u2013")  # an en dash: not cleared
    expect(row.locator("td.duration")).to_have_text(re.compile(r"^\d+:\d\d:\d\d$"))
    expect(row.locator("td.peak")).to_have_text("88.25")
    expect(alerts.locator(f'#alerts-active tr[data-alert="{alert_id}"]')).to_be_visible()
    expect(alerts.locator("#active-count")).to_have_text("1")
    # The chart follows "now": the new reading is in what it draws.
    expect(page.locator("#chart")).to_have_attribute("data-max", "88.25")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads


def test_a_read_session_gets_no_ack_button_and_its_post_is_403(console: Console) -> None:
    console.ingest([(now() - 60, 97.5)], alerts=[_alert(1)])
    (alert_id,) = _hub_alert_ids(console)
    page = console.sign_in("read")
    page.goto(f"{console.url}/alerts")
    row = page.locator(f'#alerts-active tr[data-alert="{alert_id}"]')
    expect(row).to_be_visible()
    expect(page.locator("button[data-action=ack]")).to_have_count(0)
    expect(page.locator("button[data-action=shelve]")).to_have_count(0)
    # A forged POST with the session's own CSRF token: the server says no by role.
    status = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch(`/api/v1/alerts/${id}/ack`, {method: 'POST',
                headers: {'X-CSRF-Token': csrf, 'Content-Type': 'application/json'},
                body: JSON.stringify({comment: 'forged'})});
            return [r.status, (await r.json()).error.code];
        }""",
        alert_id,
    )
    assert status == [403, "forbidden"]
    # Nor may it change thresholds (admin).
    sensor = console.sensor_id()
    page.goto(f"{console.url}/sensors/{sensor}")
    expect(page.locator("#thresholds-form")).to_have_count(0)
    with console.api("read") as c:
        alert = c.get(f"/api/v1/alerts/{alert_id}").raise_for_status().json()["data"]
    assert alert["acknowledged"] is False


def test_a_cookie_post_without_the_csrf_token_or_from_elsewhere_is_refused(
    console: Console,
) -> None:
    console.ingest([(now() - 60, 97.5)], alerts=[_alert(1)])
    (alert_id,) = _hub_alert_ids(console)
    page = console.sign_in("operator")
    page.goto(f"{console.url}/alerts")
    expect(page.locator(f'#alerts-active tr[data-alert="{alert_id}"]')).to_be_visible()
    answers = page.evaluate(
        """async (id) => {
            const post = async (headers) => {
                const r = await fetch(`/api/v1/alerts/${id}/ack`, {method: 'POST',
                    headers: {'Content-Type': 'application/json', ...headers}, body: '{}'});
                return [r.status, (await r.json()).error?.code ?? null];
            };
            return [await post({}), await post({'X-CSRF-Token': 'guessed'})];
        }""",
        alert_id,
    )
    assert answers == [[403, "csrf"], [403, "csrf"]]
    # The right token, but the request says another origin sent it.
    csrf = page.evaluate("document.querySelector('meta[name=csrf-token]').content")
    other = page.request.post(
        f"{console.url}/api/v1/alerts/{alert_id}/ack",
        data="{}",
        headers={
            "X-CSRF-Token": csrf,
            "Origin": "http://evil.example",
            "Content-Type": "application/json",
        },
    )
    assert other.status == 403
    # Sign-out needs the token too: a bare POST leaves the session alive.
    assert page.request.post(f"{console.url}/logout", form={}).status == 403
    assert page.request.get(f"{console.url}/api/v1/alerts").status == 200
    with console.api("read") as c:
        alert = c.get(f"/api/v1/alerts/{alert_id}").raise_for_status().json()["data"]
    assert alert["acknowledged"] is False
    # And the same POST with the token from the page goes through.
    ok = page.request.post(
        f"{console.url}/api/v1/alerts/{alert_id}/ack",
        data='{"comment": "with the token"}',
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert ok.status == 200


def test_an_admin_edits_thresholds_and_rules(console: Console) -> None:
    console.ingest([(now() - 60, 50.0)])
    sensor = console.sensor_id()
    page = console.sign_in("admin")
    page.goto(f"{console.url}/sensors/{sensor}")
    form = page.locator("#thresholds-form")
    form.locator("input[name=min]").fill("10")
    form.locator("input[name=max]").fill("75.5")
    form.locator("button").click()
    expect(page.locator("#thresholds-view")).to_contain_text("max 75.5")
    rule = page.locator("#rule-form")
    rule.locator("select[name=condition]").select_option("GREATER_THAN")
    rule.locator("input[name=threshold]").fill("90")
    rule.locator("select[name=severity]").select_option("CRITICAL")
    rule.locator("button").click()
    expect(page.locator("#rules tbody tr")).to_have_count(1)
    with console.api("read") as c:
        s = c.get(f"/api/v1/sensors/{sensor}").raise_for_status().json()["data"]
        rules = c.get(f"/api/v1/sensors/{sensor}/rules").raise_for_status().json()["data"]
    assert (s["thresholds"]["min"], s["thresholds"]["max"]) == (10.0, 75.5)
    assert [(r["condition"], r["threshold"], r["severity"]) for r in rules] == [
        ("GREATER_THAN", 90.0, "CRITICAL")
    ]
    # Deleting asks first: the rule stays until the admin confirms.
    page.locator('#rules tbody tr [data-action="delete"]').click()
    expect(page.locator("#rules .confirm")).to_contain_text("Delete rule")
    page.locator('#rules tbody tr [data-action="confirm-delete"]').click()
    expect(page.locator("#rules tbody tr")).to_have_count(0)


def test_sign_out_ends_the_session_on_the_server(console: Console) -> None:
    page = console.sign_in("operator")
    (cookie,) = session_cookies(page)
    page.click("header >> text=Sign out")
    page.wait_for_url(f"{console.url}/login")
    assert session_cookies(page) == []
    # The old cookie value, replayed, is nobody's any more.
    r = page.request.get(
        f"{console.url}/api/v1/gateways",
        headers={"Cookie": f"edge_session={cookie['value']}"},
    )
    assert r.status == 401

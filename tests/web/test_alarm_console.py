"""The console for a shift, in headless chromium against the real hub (both engines): the
alarm roll-up where the plant is drawn (fleet, factory, machine), the alarm table (shelved
alarms apart, cleared-unacknowledged kept in view, several acknowledged with one comment,
filters kept in the URL, times, duration and peak), and the alarm report page. Waits are on
the DOM, never sleeps."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from shared.timeutil import now
from shared.wire import WireAlert
from tests.edge_alerts import threshold_alert
from tests.web.conftest import Console, refused

M3_TEMP = "line1/machine3/temp"
M3_PRES = "line1/machine3/pres"
M1_TEMP = "line1/machine1/temp"


def _alert(
    alert_id: int,
    key: str,
    severity: str = "critical",
    opened_at: float | None = None,
    value: float = 97.5,
    closed_at: float | None = None,
) -> WireAlert:
    return threshold_alert(
        key,
        opened_at or now() - 60,
        alert_id=alert_id,
        severity=severity,
        value=value,
        closed_at=closed_at,
    )


def _alert_ids(console: Console, key: str) -> list[int]:
    sensor = console.sensor_id(key)
    with console.api("read") as c:
        rows = c.get("/api/v1/alerts", params={"sensor_id": sensor}).raise_for_status()
    return sorted(int(r["id"]) for r in rows.json()["data"])


def _two_criticals_on_machine3(console: Console) -> None:
    t = now()
    console.ingest([(t - 30, 97.5)], key=M3_TEMP, alerts=[_alert(1, M3_TEMP, opened_at=t - 60)])
    console.ingest([(t - 30, 12.25)], key=M3_PRES, alerts=[_alert(2, M3_PRES, opened_at=t - 50)])
    console.ingest([(t - 30, 40.0)], key=M1_TEMP)


def _alarm(page: Page, row: str) -> None:
    cell = page.locator(f"{row} td.alarm")
    expect(cell).to_have_attribute("data-worst", "critical")
    expect(cell).to_have_attribute("data-active", "2")
    expect(cell).to_have_attribute("data-unack", "2")


def test_the_roll_up_shows_machine3_in_alarm_with_two_criticals(console: Console) -> None:
    _two_criticals_on_machine3(console)
    page = console.sign_in("read")
    # The fleet names the factory and the machine in alarm.
    expect(page.locator("#alarm-summary")).to_contain_text("1 of 1 factories in alarm")
    factory_row = page.locator("#fleet-factories tr", has_text="plant-1")
    expect(factory_row.locator("td.alarm")).to_have_attribute("data-worst", "critical")
    machine_row = page.locator("#fleet-machines tr", has_text="machine3")
    _alarm(page, '#fleet-machines tr:has-text("machine3")')
    expect(page.locator("#fleet-machines tr", has_text="machine1")).to_have_count(0)
    console.shot(page, "fleet")

    machine_row.locator("a", has_text="plant-1").click()
    expect(page.locator("#title")).to_have_text("plant-1")
    _alarm(page, '#machines tr:has-text("machine3")')
    machine1 = page.locator('#machines tr:has-text("machine1") td.alarm')
    expect(machine1).to_have_attribute("data-worst", "none")
    expect(machine1).to_contain_text("normal")
    console.shot(page, "factory")

    page.click("#machines >> text=machine3")
    expect(page.locator("#title")).to_have_text("machine3")
    temp = page.locator('#sensors tr:has-text("temp")')
    expect(temp.locator("td.value")).to_have_text("97.5")
    expect(temp).to_contain_text("C")
    expect(temp.locator("td.alarm")).to_have_attribute("data-worst", "critical")
    expect(page.locator('#sensors tr:has-text("pres") td.value')).to_have_text("12.25")
    console.shot(page, "machine")


def test_a_shelved_alarm_leaves_the_active_list_and_the_badge(console: Console) -> None:
    _two_criticals_on_machine3(console)
    (temp,) = _alert_ids(console, M3_TEMP)
    (pres,) = _alert_ids(console, M3_PRES)
    page = console.sign_in("operator")
    page.goto(f"{console.url}/alerts")
    expect(page.locator("#active-count")).to_have_text("2")
    row = page.locator(f'#alerts-active tr[data-alert="{temp}"]')
    row.locator("input[name=comment]").fill("sensor swap this shift")
    row.locator("select[name=duration_s]").select_option("3600")
    row.locator("button[data-action=shelve]").click()
    shelved = page.locator(f'#alerts-shelved tr[data-alert="{temp}"]')
    expect(shelved.locator("td.state")).to_contain_text("shelved until")
    expect(page.locator(f'#alerts-active tr[data-alert="{temp}"]')).to_have_count(0)
    expect(page.locator(f'#alerts-active tr[data-alert="{pres}"]')).to_be_visible()
    expect(page.locator("#active-count")).to_have_text("1")
    # The roll-up agrees: one active critical on machine3, one shelved.
    page.goto(f"{console.url}/")
    cell = page.locator('#fleet-machines tr:has-text("machine3") td.alarm')
    expect(cell).to_have_attribute("data-active", "1")
    expect(cell).to_have_attribute("data-shelved", "1")
    # Unshelved, it is back in the active list.
    page.goto(f"{console.url}/alerts")
    page.locator(f'#alerts-shelved tr[data-alert="{temp}"] button[data-action=unshelve]').click()
    expect(page.locator(f'#alerts-active tr[data-alert="{temp}"]')).to_be_visible()
    expect(page.locator("#no-shelved")).to_be_visible()
    expect(page.locator("#active-count")).to_have_text("2")


def test_several_alarms_acknowledged_with_one_comment(console: Console) -> None:
    _two_criticals_on_machine3(console)
    ids = _alert_ids(console, M3_TEMP) + _alert_ids(console, M3_PRES)
    page = console.sign_in("operator")
    page.goto(f"{console.url}/alerts")
    for alert_id in ids:
        page.locator(f'#alerts-active input[data-select="{alert_id}"]').check()
    expect(page.locator("#selected-count")).to_have_text("2")
    page.fill("#bulk-comment", "both from the same coolant fault")
    console.shot(page, "alerts")
    page.click("#bulk-ack")
    for alert_id in ids:
        state = page.locator(f'#alerts-active tr[data-alert="{alert_id}"] td.state')
        expect(state).to_contain_text("acknowledged by operator")
    expect(page.locator("#active-count")).to_have_text("")
    with console.api("read") as c:
        for alert_id in ids:
            alert = c.get(f"/api/v1/alerts/{alert_id}").raise_for_status().json()["data"]
            assert alert["acknowledged"] is True
            acks = [e for e in alert["journal"] if e["action"] == "acknowledged"]
            assert [e["comment"] for e in acks] == ["both from the same coolant fault"]
            assert acks[0]["by"]["role"] == "operator"


def test_cleared_unacknowledged_stays_in_view_with_times_duration_and_peak(
    console: Console,
) -> None:
    t = now()
    opened, closed = t - 3725.0, t - 5.0
    # Readings while active push the peak past the value the edge reported at the open.
    console.ingest(
        [(t - 3700, 91.0), (t - 3000, 104.5), (t - 100, 88.0)],
        key=M1_TEMP,
        alerts=[_alert(5, M1_TEMP, "warning", opened_at=opened, value=91.0)],
    )
    console.ingest(
        [], key=M1_TEMP, alerts=[_alert(5, M1_TEMP, "warning", opened, 91.0, closed_at=closed)]
    )
    (alert_id,) = _alert_ids(console, M1_TEMP)
    page = console.sign_in("operator")
    page.goto(f"{console.url}/alerts")
    row = page.locator(f'#alerts-active tr[data-alert="{alert_id}"]')
    expect(row.locator("td.state")).to_contain_text("cleared")
    expect(row.locator("td.peak")).to_have_text("104.5")
    expect(row.locator("td.duration")).to_have_text("1:02:00")
    iso = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
    expect(row.locator("td.opened")).to_have_text(re.compile(iso))
    expect(row.locator("td.cleared")).to_have_text(re.compile(iso))
    expect(page.locator("#no-active")).to_be_hidden()
    row.locator("button[data-action=ack]").click()
    expect(page.locator(f'#alerts-cleared tr[data-alert="{alert_id}"]')).to_be_visible()
    expect(page.locator("#no-active")).to_have_text("No active alarms")


def test_filters_survive_a_reload(console: Console) -> None:
    _two_criticals_on_machine3(console)
    t = now()
    console.ingest([], key=M1_TEMP, alerts=[_alert(9, M1_TEMP, "warning", opened_at=t - 20)])
    (m1,) = _alert_ids(console, M1_TEMP)
    (m3,) = _alert_ids(console, M3_TEMP)
    page = console.sign_in("read")
    page.goto(f"{console.url}/alerts")
    expect(page.locator("#alerts-active tbody tr")).to_have_count(3)
    page.select_option("#alarm-filters select[name=severity]", "warning")
    expect(page.locator("#alerts-active tbody tr")).to_have_count(1)
    expect(page.locator(f'#alerts-active tr[data-alert="{m1}"]')).to_be_visible()
    page.select_option("#alarm-filters select[name=machine_id]", label="machine1 (plant-1)")
    page.select_option("#alarm-filters select[name=state]", "active")
    page.select_option("#alarm-filters select[name=kind]", "threshold")
    expect(page).to_have_url(re.compile(r"severity=warning"))
    page.reload()
    form = page.locator("#alarm-filters")
    expect(form.locator("select[name=severity]")).to_have_value("warning")
    expect(form.locator("select[name=state]")).to_have_value("active")
    expect(form.locator("select[name=kind]")).to_have_value("threshold")
    expect(form.locator("select[name=machine_id] option:checked")).to_have_text(
        "machine1 (plant-1)"
    )
    expect(page.locator(f'#alerts-active tr[data-alert="{m1}"]')).to_be_visible()
    expect(page.locator("#alerts-active tbody tr")).to_have_count(1)
    # Another filter: machine3's criticals, and machine1's warning is gone.
    page.select_option("#alarm-filters select[name=severity]", "critical")
    expect(page.locator("#alerts-active tbody tr")).to_have_count(0)
    expect(page.locator("#no-active")).to_be_visible()
    page.click("#alarm-filters button[type=reset]")
    expect(page.locator(f'#alerts-active tr[data-alert="{m3}"]')).to_be_visible()
    expect(page).to_have_url(f"{console.url}/alerts")


def test_the_report_page_draws_the_rate_against_the_targets_and_links_the_sources(
    console: Console,
) -> None:
    _two_criticals_on_machine3(console)
    t = now()
    repeats = [
        _alert(20 + i, M1_TEMP, "warning", opened_at=t - 900 + 60 * i, closed_at=t - 880 + 60 * i)
        for i in range(3)
    ]
    console.ingest([], key=M1_TEMP, alerts=repeats)
    m1 = console.sensor_id(M1_TEMP)
    page = console.sign_in("read")
    page.click("nav >> text=Report")
    chart = page.locator("#rate-chart")
    expect(chart).to_have_attribute("data-total", "5")
    # A day in 10-minute bars, against 1 and 2 per 10 minutes and the flood line at 10.
    expect(chart).to_have_attribute("data-bucket", "600")
    expect(chart).to_have_attribute("data-bars", "144")
    expect(chart).to_have_attribute("data-targets", "[1,2,10]")
    expect(page.locator('#report-figures tr[data-figure="Alarms"]')).to_contain_text("5")
    # The bad actors: machine1's sensor first, linked to its page.
    first = page.locator("#report-sources tbody tr").first
    expect(first).to_contain_text(M1_TEMP)
    expect(first).to_contain_text("60 %")
    console.shot(page, "alarm-report")
    # A week: hourly bars, the targets scaled to an hour; kept in the URL over a reload.
    page.select_option("#report-form select[name=period]", "604800")
    expect(chart).to_have_attribute("data-bucket", "3600")
    expect(chart).to_have_attribute("data-targets", "[6,12]")
    expect(page).to_have_url(re.compile(r"/alarm-report\?period=604800$"))
    page.reload()
    expect(page.locator("#report-form select[name=period]")).to_have_value("604800")
    expect(chart).to_have_attribute("data-bucket", "3600")
    expect(chart).to_have_attribute("data-total", "5")
    page.locator("#report-sources a", has_text=M1_TEMP).click()
    page.wait_for_url(f"{console.url}/sensors/{m1}")
    expect(page.locator("#title")).to_have_text(f"temp ({M1_TEMP})")


def test_a_standing_alarm_is_shown_stale(console: Console) -> None:
    # Opened two days ago and still active: past [alarms] stale_after_s (a day), the hub's
    # alert watch marks it stale at its next round, and the alarm table says so.
    t = now()
    console.ingest(
        [(t - 30, 97.5)], key=M3_TEMP, alerts=[_alert(1, M3_TEMP, opened_at=t - 2 * 86400)]
    )
    console.ingest([(t - 30, 12.25)], key=M3_PRES, alerts=[_alert(2, M3_PRES, opened_at=t - 50)])
    (temp,) = _alert_ids(console, M3_TEMP)
    (pres,) = _alert_ids(console, M3_PRES)
    page = console.sign_in("read")
    page.goto(f"{console.url}/alerts")
    # The watch runs every [alerts] check_interval_s (5 s): wait for its mark, bounded.
    state = page.locator(f'#alerts-active tr[data-alert="{temp}"] td.state')
    expect(state).to_contain_text("stale", timeout=30_000)
    expect(page.locator(f'#alerts-active tr[data-alert="{pres}"] td.state')).not_to_contain_text(
        "stale"
    )


def test_an_action_the_hub_refuses_says_why_beside_its_buttons(console: Console) -> None:
    _two_criticals_on_machine3(console)
    (temp,) = _alert_ids(console, M3_TEMP)
    page = console.sign_in("operator")
    page.goto(f"{console.url}/alerts")
    row = page.locator(f'#alerts-active tr[data-alert="{temp}"]')
    expect(row).to_be_visible()
    # The database went away as the shelve was asked: the hub's own 503 answer.
    refusal = {
        "error": {
            "code": "database_unavailable",
            "message": "no writable database reachable",
            "details": [],
        }
    }
    page.route(f"**/api/v1/alerts/{temp}/shelve", lambda route: route.fulfill(
        status=503, json=refusal, headers={"Retry-After": "1"}
    ))  # fmt: skip
    row.locator("input[name=comment]").fill("sensor swap")
    with page.expect_console_message(lambda m: "status of 503 " in m.text):
        row.locator("button[data-action=shelve]").click()
    refused(console, 503)
    said = row.locator("td.actions output.feedback.error")
    expect(said).to_have_text("no writable database reachable")
    expect(row.locator("input[name=comment]")).to_have_value("sensor swap")  # kept to retry
    # Acknowledged meanwhile by someone else (the row, focused, is not redrawn under the
    # operator's hand): this acknowledgement is what was asked, no error.
    with console.api("operator") as c:
        c.post(f"/api/v1/alerts/{temp}/ack", json={"comment": "on it"}).raise_for_status()
    with page.expect_console_message(lambda m: "status of 409 " in m.text):
        row.locator("button[data-action=ack]").click()
    expect(row.locator("td.state")).to_contain_text("acknowledged")
    expect(row.locator("output.error")).to_have_count(0)

"""The console for a shift, in headless chromium against the real hub (both engines): the
alarm roll-up where the plant is drawn (fleet, factory, machine). Waits are on the DOM,
never sleeps."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from shared.timeutil import now
from shared.wire import WireAlert
from tests.web.conftest import Console

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
    return WireAlert(
        id=alert_id,
        key=key,
        rule="threshold",
        breach_type="above_maximum",
        severity=severity,
        threshold_value=80.0,
        value=value,
        opened_at=opened_at or now() - 60,
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

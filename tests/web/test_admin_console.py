"""Admins' work in the console, in headless chromium against the real hub (both engines): the
model's forms (create, rename, delete factories, machines and sensors; a rule's deadband and
delay), feedback beside the form or the field, deleting only once confirmed, nothing of it
for read and operator sessions; the CSV exports with the session cookie; the plant's time
zone; the out-of-service count of the alarm roll-up. Waits are on the DOM, never sleeps."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from shared.timeutil import now
from shared.wire import WireAlert
from tests.web.conftest import ENGINES, KEY, Console, check_clean, refused, start_console

BERLIN = ZoneInfo("Europe/Berlin")


def _get(console: Console, path: str, role: str = "read") -> Any:
    with console.api(role) as c:
        return c.get(f"/api/v1{path}").raise_for_status().json()["data"]


def _status(console: Console, path: str) -> int:
    with console.api("read") as c:
        return c.get(f"/api/v1{path}").status_code


def _feedback(page: Page, form: str) -> Any:
    return page.locator(f"#{form} > output.feedback")


def _add(
    page: Page,
    form: str,
    saved: str,
    inputs: dict[str, str],
    selects: dict[str, str] | None = None,
) -> None:
    """Fill the new-item form ``form`` (its inputs, and the options of its selects), submit
    it and see it say ``saved``."""
    box = page.locator(f"#{form}")
    for name, value in inputs.items():
        box.locator(f"input[name={name}]").fill(value)
    for name, value in (selects or {}).items():
        box.locator(f"select[name={name}]").select_option(value)
    box.locator("button[type=submit]").click()
    expect(_feedback(page, form)).to_have_text(saved)


def _delete(page: Page, form: str, then: str, asks: str | None = None) -> None:
    """Delete what the page shows with its edit form ``form``, confirmed (the question
    ``asks``, when given); the console goes on to the page at ``then``."""
    edit = page.locator(f"#{form}")
    edit.locator('[data-action="delete"]').click()
    if asks is not None:
        expect(edit.locator(".confirm")).to_contain_text(asks)
    edit.locator('[data-action="confirm-delete"]').click()
    page.wait_for_url(then)


def _rename(page: Page, form: str, old: str, new: str) -> None:
    """Rename what the page shows from ``old`` to ``new`` with its edit form ``form``."""
    edit = page.locator(f"#{form}")
    expect(edit.locator("input[name=name]")).to_have_value(old)
    edit.locator("input[name=name]").fill(new)
    edit.locator("button[type=submit]").click()
    expect(_feedback(page, form)).to_have_text("Saved")
    expect(page.locator("#title")).to_have_text(new)


def test_an_admin_makes_renames_and_deletes_a_factory_machine_and_sensor(
    console: Console,
) -> None:
    page = console.sign_in("admin")
    page.goto(f"{console.url}/factories")
    _add(page, "new-factory", "Saved: plant-9", {"name": "plant-9", "location": "Hall 4"})
    form = page.locator("#new-factory")
    expect(page.locator("#factories tbody tr", has_text="plant-9")).to_contain_text("Hall 4")

    # A name taken (409) and a name the API refuses (422): its words beside the field.
    form.locator("input[name=name]").fill("plant-9")
    form.locator("button[type=submit]").click()
    error = form.locator('.field-error[data-error-for="name"]')
    expect(error).to_contain_text("plant-9")
    expect(form.locator("input[name=name]")).to_have_attribute("aria-invalid", "true")
    expect(_feedback(page, "new-factory")).to_have_class("feedback error")
    expect(page.locator("#status")).to_have_text("")
    form.locator("input[name=name]").fill("a/b")
    form.locator("button[type=submit]").click()
    expect(error).to_contain_text("must not contain '/'")
    refused(console, 422)
    factory = next(f for f in _get(console, "/factories") if f["name"] == "plant-9")
    assert [f["name"] for f in _get(console, "/factories")].count("plant-9") == 1

    # The factory's page: rename it, add a machine.
    page.goto(f"{console.url}/factories/{factory['id']}")
    _rename(page, "edit-factory", "plant-9", "plant-10")
    machine = {"line": "line7", "name": "mixer"}
    _add(page, "new-machine", "Saved: mixer", machine, {"status": "MAINTENANCE"})
    expect(page.locator("#machines tbody tr", has_text="mixer")).to_contain_text("MAINTENANCE")
    console.shot(page, "factory-admin")
    _feedback(page, "new-machine").locator("a").click()

    # The machine's page: rename it, add a sensor.
    page.wait_for_url(f"{console.url}/machines/*")
    machine_id = int(page.url.rsplit("/", 1)[1])
    _rename(page, "edit-machine", "mixer", "mixer2")
    sensor = {"name": "speed", "unit": "rpm", "max_threshold": "1500"}
    _add(page, "new-sensor", "Saved: line7/mixer2/speed", sensor)
    expect(page.locator("#sensors tbody tr", has_text="speed")).to_contain_text("1,500")
    # A reading for it (back-filled), so that its page has a latest value to show.
    link = _feedback(page, "new-sensor").locator("a")
    sensor_id = int((link.get_attribute("href") or "").rsplit("/", 1)[1])
    with console.api("admin") as c:
        reading = {"sensor_id": sensor_id, "value": 900.0, "timestamp": now() - 5}
        c.post("/api/v1/readings/bulk", json=[reading]).raise_for_status()
    link.click()

    # The sensor's page: rename it; then delete it, the machine and the factory, each only
    # once confirmed.
    page.wait_for_url(f"{console.url}/sensors/{sensor_id}")
    expect(page.locator("#latest-value")).to_have_text("900")
    edit = page.locator("#edit-sensor")
    expect(edit.locator("input[name=unit]")).to_have_value("rpm")
    edit.locator("input[name=name]").fill("rpm")
    edit.locator("button[type=submit]").click()
    expect(_feedback(page, "edit-sensor")).to_have_text("Saved")
    # A sensor's key stays when it is renamed: gateways keep sending to it.
    expect(page.locator("#title")).to_have_text("rpm (line7/mixer2/speed)")
    edit.locator('[data-action="delete"]').click()
    expect(edit.locator(".confirm")).to_contain_text("Delete sensor rpm for good?")
    edit.locator('[data-action="cancel-delete"]').click()
    expect(edit.locator(".confirm")).to_have_count(0)
    assert _status(console, f"/sensors/{sensor_id}") == 200
    _delete(page, "edit-sensor", f"{console.url}/machines/{machine_id}")
    assert _status(console, f"/sensors/{sensor_id}") == 404

    _delete(page, "edit-machine", f"{console.url}/factories/{factory['id']}")
    assert _status(console, f"/machines/{machine_id}") == 404
    _delete(page, "edit-factory", f"{console.url}/factories", "Delete factory plant-10 for good?")
    assert _status(console, f"/factories/{factory['id']}") == 404


def test_a_factory_with_machines_is_not_deleted_and_says_why(console: Console) -> None:
    console.ingest([(now() - 60, 20.0)])
    factory = _get(console, "/factories")[0]
    page = console.sign_in("admin")
    page.goto(f"{console.url}/factories/{factory['id']}")
    edit = page.locator("#edit-factory")
    expect(edit.locator("input[name=name]")).to_have_value(factory["name"])
    edit.locator('[data-action="delete"]').click()
    edit.locator('[data-action="confirm-delete"]').click()
    expect(_feedback(page, "edit-factory")).to_have_class("feedback error")
    expect(_feedback(page, "edit-factory")).to_contain_text("has 1 machine(s)")
    assert page.url == f"{console.url}/factories/{factory['id']}"
    assert _status(console, f"/factories/{factory['id']}") == 200


def test_an_admin_edits_a_rules_deadband_and_delay(console: Console) -> None:
    console.ingest([(now() - 60, 50.0)])
    sensor = console.sensor_id()
    page = console.sign_in("admin")
    page.goto(f"{console.url}/sensors/{sensor}")
    add = page.locator("#rule-form")
    add.locator("input[name=threshold]").fill("80")
    add.locator("input[name=deadband]").fill("2")
    add.locator("input[name=delay_s]").fill("30")
    add.locator("button[type=submit]").click()
    expect(_feedback(page, "rule-form")).to_have_text("Saved")
    row = page.locator("#rules tbody tr")
    expect(row.locator("td.deadband")).to_have_text("2")
    expect(row.locator("td.delay")).to_have_text("30 s")

    row.locator("summary", has_text="Edit").click()
    edit = row.locator("form.rule-edit")
    edit.locator("input[name=deadband]").fill("-1")
    edit.locator("button[type=submit]").click()
    # The API's words beside the field, and the row kept open by the refresh meanwhile.
    expect(edit.locator('.field-error[data-error-for="deadband"]')).to_have_text("must be >= 0")
    refused(console, 422)
    edit.locator("input[name=deadband]").fill("1.5")
    edit.locator("input[name=delay_s]").fill("120")
    edit.locator("button[type=submit]").click()
    expect(row.locator("td.deadband")).to_have_text("1.5")
    expect(row.locator("td.delay")).to_have_text("120 s")
    expect(row.locator("output.feedback")).to_have_text("Saved")
    console.shot(page, "sensor-admin")
    (rule,) = _get(console, f"/sensors/{sensor}/rules")
    assert (rule["threshold"], rule["deadband"], rule["delay_s"]) == (80.0, 1.5, 120.0)


@pytest.mark.parametrize("role", ["read", "operator"])
def test_read_and_operator_sessions_get_no_admin_forms(console: Console, role: str) -> None:
    console.ingest([(now() - 60, 50.0)])
    sensor = console.sensor_id()
    factory = _get(console, "/factories")[0]
    page = console.sign_in(role)
    for path in ("/factories", f"/factories/{factory['id']}", f"/sensors/{sensor}"):
        page.goto(f"{console.url}{path}")
        expect(page.locator("body")).to_have_attribute("data-refreshes", re.compile(r"^[1-9]"))
        assert page.locator("form.admin, #thresholds-form, #rule-form").count() == 0
        assert page.locator('script[src="/static/admin.js"]').count() == 0
    # The exports are for every role.
    expect(page.locator("#export-view")).to_be_visible()
    # And the API refuses the write anyway, with the page's own CSRF token.
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/api/v1/factories', {method: 'POST', body: '{"name": "x"}',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}});
            return r.status;
        }"""
    )
    assert status == 403
    assert [f["name"] for f in _get(console, "/factories")] == [factory["name"]]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_exports_download_with_the_session_cookie(console: Console) -> None:
    t = float(int(now()) - 600)
    console.ingest([(t + i, 20.0 + i / 3) for i in range(5)])
    sensor = console.sensor_id()
    factory = _get(console, "/factories")[0]
    page = console.sign_in("read")
    page.goto(f"{console.url}/sensors/{sensor}#range=3600")
    # Drawn at least once: the view follows "now" and redraws at every poll (0.3 s here).
    expect(page.locator("#chart")).to_have_attribute("data-drawn", re.compile(r"^[1-9]\d*$"))
    with page.expect_download() as got:
        page.locator("#export-view").click()
    download = got.value
    assert download.suggested_filename == f"sensor-{sensor}-readings.csv"
    rows = _rows(Path(download.path()).read_text())
    assert [float(r["value"]) for r in rows] == [20.0 + i / 3 for i in range(5)]

    # The factory's report for a chosen period, named for the factory and the period, its
    # averages to 4 significant digits and min and max as stored.
    page.goto(f"{console.url}/factories/{factory['id']}")
    form = page.locator("#report-export")
    start = datetime.fromtimestamp(t - 60, UTC)
    end = datetime.fromtimestamp(t + 120, UTC)
    # An end before the start is said beside the form, and nothing is downloaded.
    form.locator("input[name=from]").fill(end.strftime("%Y-%m-%d %H:%M"))
    form.locator("input[name=to]").fill(start.strftime("%Y-%m-%d %H:%M"))
    form.locator("button[type=submit]").click()
    expect(form.locator("output.feedback")).to_have_text(
        "Give a start and a later end as 2026-12-07 14:05."
    )
    # Typed in the console's own format (the plant's zone: UTC here).
    form.locator("input[name=from]").fill(start.strftime("%Y-%m-%d %H:%M"))
    form.locator("input[name=to]").fill(end.strftime("%Y-%m-%d %H:%M"))
    with page.expect_download() as got:
        form.locator("button[type=submit]").click()
    download = got.value
    period = f"{start:%Y-%m-%dT%H%M}Z-{end:%Y-%m-%dT%H%M}Z"
    assert download.suggested_filename == f"{factory['name']}-report-{period}.csv"
    (row,) = _rows(Path(download.path()).read_text())
    assert (row["key"], row["count"]) == (KEY, "5")
    assert (float(row["min"]), float(row["max"])) == (20.0, 20.0 + 4 / 3)
    assert row["avg"] == "20.67"
    # No token went into any URL: the browser's own cookie carried the downloads.
    assert not [u for u in console.requests if console.tokens["read"] in u]


@pytest.fixture(params=ENGINES)
def berlin(request: pytest.FixtureRequest, tmp_path: Path, browser: Browser) -> Iterator[Console]:
    pg = request.getfixturevalue("web_pg") if request.param == "postgresql" else None
    found = start_console(request.param, tmp_path, browser, pg, 'time_zone = "Europe/Berlin"\n')
    try:
        yield found
        check_clean(found)
    finally:
        found.close()
        found.hub.stop()


def test_times_are_shown_in_the_plants_zone_with_utc_on_hover(berlin: Console) -> None:
    opened = float(int(now()) - 3600)
    read_at = opened + 1800
    berlin.ingest(
        [(read_at, 97.5)],
        alerts=[
            WireAlert(
                id=1,
                key=KEY,
                rule="threshold",
                breach_type="above_maximum",
                severity="high",
                threshold_value=80.0,
                value=97.5,
                opened_at=opened,
            )
        ],
    )
    sensor = berlin.sensor_id()
    # A browser set to another zone shows the plant's time all the same.
    page = berlin.sign_in("read", berlin.page(timezone_id="America/New_York"))
    page.goto(f"{berlin.url}/sensors/{sensor}")

    def plant(ts: float) -> str:
        return datetime.fromtimestamp(ts, BERLIN).strftime("%Y-%m-%d %H:%M:%S")

    def utc(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    latest = page.locator("#latest-time")
    expect(latest).to_have_text(plant(read_at))
    expect(latest).to_have_attribute("title", utc(read_at))
    cell = page.locator("#sensor-alerts tbody tr td").nth(3)
    expect(cell).to_have_text(plant(opened))
    expect(cell).to_have_attribute("title", utc(opened))
    page.goto(f"{berlin.url}/alerts")
    opened_cell = page.locator("#alerts-active td.opened")
    expect(opened_cell).to_have_text(plant(opened))
    expect(opened_cell).to_have_attribute("title", utc(opened))


def test_the_roll_up_counts_out_of_service_alarms(console: Console) -> None:
    t = now()
    alert = WireAlert(
        id=1,
        key=KEY,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=80.0,
        value=97.5,
        opened_at=t - 120,
    )
    console.ingest([(t - 60, 97.5)], alerts=[alert])
    sensor = console.sensor_id()
    machine = _get(console, f"/sensors/{sensor}")["machine_id"]
    with console.api("operator") as c:
        c.post(
            f"/api/v1/sensors/{sensor}/out-of-service", json={"comment": "recalibration"}
        ).raise_for_status()
    page = console.sign_in("read")
    cell = page.locator("#fleet-factories tbody tr td.alarm")
    expect(cell).to_have_attribute("data-out-of-service", "1")
    expect(cell).to_contain_text("1 out of service")
    expect(cell).to_have_attribute("data-active", "0")
    expect(page.locator("#alarm-summary")).to_contain_text("1 out of service")
    factory = _get(console, "/factories")[0]
    page.goto(f"{console.url}/factories/{factory['id']}")
    expect(page.locator("#machines td.alarm")).to_contain_text("1 out of service")
    page.goto(f"{console.url}/machines/{machine}")
    sensor_cell = page.locator(f'#sensors tr[data-sensor="{sensor}"] td.alarm')
    expect(sensor_cell).to_have_attribute("data-out-of-service", "1")
    expect(sensor_cell).to_contain_text("normal, 1 out of service")

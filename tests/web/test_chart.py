"""The sensor chart in headless chromium against the real hub (both engines): what it draws
is readable — a hover readout of the bucket, value ticks that cover the data, sparse
readings joined and real holes left open, a single spike in a month drawn at its height."""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import datetime
from typing import Any

from playwright.sync_api import Page, expect

from shared.timeutil import now
from shared.wire import WireAlert
from tests.web.conftest import KEY, Console

HOUR = 3600.0
DAY = 86400.0

# The line's colour (--chart-line, #1f6feb) at full strength; the band's 22% wash of it over
# white is far lighter (about 204, 222, 251), so a pixel that matches this is the line's.
_LINE_TOP = """() => {
  const c = document.getElementById('chart');
  const dpr = c.width / c.clientWidth;
  const img = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let top = null;
  for (let row = 0; row < c.height && top === null; row++) {
    for (let col = 0; col < c.width; col++) {
      const i = (row * c.width + col) * 4;
      if (img[i] < 90 && img[i + 1] < 150 && img[i + 2] > 200 && img[i + 3] > 128) {
        top = row / dpr;
        break;
      }
    }
  }
  return top;
}"""


def _alert(alert_id: int, opened_at: float) -> WireAlert:
    return WireAlert(
        id=alert_id,
        key=KEY,
        rule="threshold",
        breach_type="above_maximum",
        severity="high",
        threshold_value=40.0,
        value=50.0,
        opened_at=opened_at,
    )


def _ingest(console: Console, readings: list[tuple[float, float]]) -> None:
    for first in range(0, len(readings), 1000):
        console.ingest(readings[first : first + 1000])


def _drawn(page: Page, count: int) -> dict[str, Any]:
    # Waits through the DOM: the page's CSP (no eval) rules out wait_for_function.
    expect(page.locator("#chart")).to_have_attribute("data-drawn", str(count))
    return dict(page.evaluate("({...document.getElementById('chart').dataset})"))


def test_a_spike_in_a_month_is_drawn_at_its_height_and_the_hover_reads_its_bucket(
    console: Console,
) -> None:
    end = (now() // HOUR) * HOUR - HOUR
    start = end - 30 * DAY
    # A month of one reading every 10 minutes at 20, and one reading of 95 in the middle.
    spike_ts = start + 15 * DAY + 5 * 600
    readings = [(start + i * 600.0, 20.0) for i in range(4320)]
    readings = [(ts, 95.0 if ts == spike_ts else v) for ts, v in readings]
    _ingest(console, readings)
    sensor = console.sensor_id()
    page = console.sign_in("read")
    page.goto(f"{console.url}/sensors/{sensor}#from={start}&to={end}")
    state = _drawn(page, 1)
    assert float(state["bucket"]) >= HOUR  # a month in pixel columns: hour buckets or wider
    data = page.evaluate("window.edgeChart.state.data")
    (spiked,) = [b for b in data if b["max"] == 95.0]
    assert spiked["avg"] < 40  # the average alone would hide it

    # The value axis covers the data with nice steps.
    ticks = json.loads(state["yticks"])
    assert ticks[0] <= 20.0 and ticks[-1] >= 95.0
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in (1.0, 2.0, 5.0)

    # The topmost pixel in the line's full colour is the spike's top.
    spike_y = page.evaluate(f"window.edgeChart.yOf({spiked['max']})")
    top = page.evaluate(_LINE_TOP)
    assert top is not None and abs(top - spike_y) <= 3, (top, spike_y)

    # Hover over the spike's bucket: the readout says its time, min, max and average.
    bucket = float(state["bucket"])
    x = page.evaluate(f"window.edgeChart.xOf({spiked['ts'] + bucket / 2})")
    box = page.locator("#chart").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    readout = page.locator("#chart-readout")
    expect(readout).to_have_attribute("data-ts", str(int(spiked["ts"])))
    expect(readout).to_contain_text("max 95")
    expect(readout).to_contain_text("min 20")
    avg = page.evaluate(f"window.edgeConsole.fmtNum({spiked['avg']})")
    expect(readout).to_contain_text(f"avg {avg}")
    expect(readout).to_contain_text(f"({spiked['count']} readings)")
    # The UTC instant on hover, in the console's one format.
    instant = datetime.fromisoformat(spiked["time"].replace("Z", "+00:00"))
    assert readout.get_attribute("title") == instant.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Moving off the chart clears it.
    page.mouse.move(box["x"] + x, box["y"] + box["height"] + 40)
    expect(readout).to_have_text("")


def test_sparse_readings_are_joined_and_only_a_real_hole_is_a_gap(console: Console) -> None:
    end = (now() // HOUR) * HOUR - HOUR
    start = end - 4 * HOUR
    # One reading a minute (one missed at the 30th minute), then two hours without, then
    # one a minute again: in the chart's 15 s buckets most columns are empty.
    first = [start + i * 60.0 for i in range(60) if i != 30]
    second = [start + 3 * HOUR + i * 60.0 for i in range(60)]
    _ingest(console, [(ts, 10.0 + (i % 7)) for i, ts in enumerate(first + second)])
    sensor = console.sensor_id()
    page = console.sign_in("read")
    page.goto(f"{console.url}/sensors/{sensor}#from={start}&to={end}")
    state = _drawn(page, 1)
    assert float(state["bucket"]) < 60  # more buckets than readings: sparse
    gaps = json.loads(state["gaps"])
    # The bucket of each reading starts at it (whole minutes, buckets of a minute's divisor).
    assert gaps == [[first[-1], second[0]]]
    ticks = json.loads(state["yticks"])
    assert ticks[0] <= 10.0 and ticks[-1] >= 16.0


def test_an_alarm_period_is_shaded_from_its_opening_to_now(console: Console) -> None:
    t = now()
    console.ingest([(t - 3 * HOUR + i * 60.0, 50.0) for i in range(170)])
    opened = t - HOUR
    console.ingest(alerts=[_alert(1, opened)])
    sensor = console.sensor_id()
    page = console.sign_in("read")
    page.goto(f"{console.url}/sensors/{sensor}#range=14400")
    expect(page.locator("#sensor-alerts tbody tr")).to_have_count(1)
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-alarms", re.compile(r"^\[\[\d"))
    ((start, end),) = json.loads(chart.get_attribute("data-alarms") or "")
    assert abs(start - opened) < 0.01 and end > opened  # still active: shaded on to now
    # The shade is in the plot: the alarm colour, faint, above the line at that time. Read at
    # three instants 10 minutes apart: the time grid of 4 hours has a line on every hour of
    # the clock, and one instant may fall on it (opaque grey under the shade) when the test
    # runs within seconds of it; the other two cannot.
    pixels = []
    for at in (opened + 20 * 60, opened + 30 * 60, opened + 40 * 60):
        x = page.evaluate(f"window.edgeChart.xOf({at})")
        pixels.append(
            page.evaluate(
                f"""() => {{
                  const c = document.getElementById('chart');
                  const dpr = c.width / c.clientWidth;
                  return Array.from(c.getContext('2d').getImageData(
                    Math.round({x} * dpr), Math.round(20 * dpr), 1, 1).data);
                }}"""
            )
        )
    faint_red = [p for p in pixels if 0 < p[3] < 128 and p[0] > 150 and p[1] < 100]
    assert len(faint_red) >= 2, pixels

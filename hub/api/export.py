"""CSV exports of a whole range, streamed: ``GET /sensors/:id/readings?format=csv`` without
``limit``, and ``GET /factories/:id/report?format=csv`` without ``page``/``per_page``.

The answer is sent in pages as they are read (chunked transfer), so a week of readings
neither waits to be built in memory nor comes back cut short. Readings are paged by key
(ts, id), each page a query as cheap as the first. Every page is charged to the token's
read budget as it is read: the first before the answer starts (an exhausted budget is a
429), the rest by pausing the stream until the budget allows them.

Robyn 0.88 ends a stream cleanly whatever its generator raises, so a failure mid-way (the
database gone) cannot cut the connection: the file then ends with :data:`FAILED`, a line no
export has otherwise, and never looks whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog

from hub.api.csv_out import CSV_TYPE, csv_bytes
from hub.api.http import Raw
from hub.api.readcost import EXPORT_PAGE
from hub.ratelimit import ReadCharge
from hub.storage import Storage
from shared.timeutil import to_rfc3339

log = structlog.get_logger("hub.export")

# Sensors per page of a report export: each is one statistics query (from rollups).
REPORT_PAGE = 500
FAILED = b"# export failed here: the rows above are complete, ask again for the rest\r\n"

Cells = Sequence[Any]


def _stream(first: bytes, rest: Iterator[bytes], what: str) -> Iterator[bytes]:
    yield first
    try:
        yield from rest
    except Exception:
        log.exception("export failed mid-way", export=what)
        yield FAILED


def _answer(first: bytes, rest: Iterator[bytes], filename: str, what: str) -> Raw:

    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        # The whole range, never cut: what a cut answer's headers would say.
        "X-Truncated": "false",
    }
    return Raw(200, b"", CSV_TYPE, headers, stream=_stream(first, rest, what))


class _Rolling:
    """The average of the last ``window`` values, carried from page to page."""

    def __init__(self, window: int, before: list[float]) -> None:
        self.values: deque[float] = deque(before, maxlen=window)
        self.total = sum(self.values)

    def add(self, value: float) -> float:
        if len(self.values) == self.values.maxlen:
            self.total -= self.values[0]
        self.values.append(value)
        self.total += value
        return self.total / len(self.values)


def readings(
    storage: Storage,
    reads: ReadCharge,
    sensor_id: int,
    start: float | None,
    end: float | None,
    window: int | None,
) -> Raw:
    """Every reading of [start, end), oldest first; with ``window``, its rolling average."""
    columns = ["id", "ts", "time", "value"] + (["rolling_avg"] if window else [])
    rolling = None
    if window:
        before = [] if start is None else storage.readings_before(sensor_id, start, window - 1)
        rolling = _Rolling(window, before)

    def rows(page: list[tuple[int, float, float]]) -> Iterator[Cells]:
        for rid, ts, value in page:
            row: list[Any] = [rid, ts, to_rfc3339(ts), value]
            if rolling is not None:
                row.append(rolling.add(value))
            yield row

    def read(after: tuple[float, int] | None, wait: bool) -> list[tuple[int, float, float]]:
        with reads.page(EXPORT_PAGE, wait=wait) as charged:
            page = storage.readings_after(sensor_id, after, start, end, EXPORT_PAGE)
            charged.read = len(page)
        return page

    first = read(None, wait=False)

    def rest(page: list[tuple[int, float, float]]) -> Iterator[bytes]:
        while len(page) == EXPORT_PAGE:
            page = read((page[-1][1], page[-1][0]), wait=True)
            yield csv_bytes(None, rows(page))

    body = csv_bytes(columns, rows(first))
    return _answer(body, rest(first), f"sensor-{sensor_id}-readings.csv", "readings")


def report(
    reads: ReadCharge,
    filename: str,
    columns: Sequence[str],
    page_rows: Callable[[int, int], tuple[list[dict[str, Any]], int]],
) -> Raw:
    """Every sensor's report row; ``page_rows(offset, limit)`` builds one page of them."""

    def read(offset: int, wait: bool) -> list[dict[str, Any]]:
        with reads.page(REPORT_PAGE, wait=wait) as charged:
            page, _ = page_rows(offset, REPORT_PAGE)
            charged.read = len(page)
        return page

    def cells(page: list[dict[str, Any]]) -> Iterator[Cells]:
        return ([row[c] for c in columns] for row in page)

    first = read(0, wait=False)

    def rest(page: list[dict[str, Any]]) -> Iterator[bytes]:
        offset = len(page)
        while len(page) == REPORT_PAGE:
            page = read(offset, wait=True)
            offset += len(page)
            yield csv_bytes(None, cells(page))

    body = csv_bytes(columns, cells(first))
    return _answer(body, rest(first), filename, "report")

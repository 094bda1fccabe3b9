"""CSV answers: the format parameter, cells safe to open in a spreadsheet, the download.

Shared by the readings list, its streamed export (hub.api.export) and the factory report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from hub.api.http import Raw
from hub.errors import bad_param

CSV_TYPE = "text/csv; charset=utf-8"


def parse_format(params: dict[str, str]) -> str:
    raw = (params.get("format") or "json").strip().lower()
    if raw not in ("json", "csv"):
        raise bad_param("format", f"must be json or csv, got {params.get('format')!r}")
    return raw


# A text cell starting with one of these is a formula to a spreadsheet (CSV injection): a
# sensor named "=HYPERLINK(...)" must open as text. Numbers are written as numbers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # reads back bit for bit
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_bytes(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> bytes:
    """``rows`` as CSV, after ``header`` (None: a later page of the same file)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def csv_answer(body: bytes, filename: str, headers: dict[str, str] | None = None) -> Raw:
    """``body`` as a CSV download named ``filename``."""
    extra = {"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})}
    return Raw(200, body, CSV_TYPE, extra)

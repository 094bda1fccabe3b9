"""How ``edge-hub``'s list commands print: an aligned table, or JSON with ``--json``."""

from __future__ import annotations

import json
from typing import Any

from hub.cli.streams import out
from shared.timeutil import to_rfc3339


def when(ts: float | None) -> str:
    return "-" if ts is None else to_rfc3339(ts)


def print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows), file=out())
        return
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        line_text = "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
        print(line_text.rstrip(), file=out())

"""The console's own static files (hub/web/static), read once and served from memory."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Revalidated on each load: a hub upgrade must not leave old scripts in operators' caches,
# and the files are small.
HEADERS: dict[str, str] = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def names() -> list[str]:
    return sorted(p.name for p in STATIC.iterdir() if p.suffix in TYPES)


@cache
def asset(name: str) -> tuple[bytes, str]:
    path = STATIC / name
    return path.read_bytes(), TYPES[path.suffix]

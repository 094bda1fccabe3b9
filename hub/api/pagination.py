"""Page-numbered lists, as the seeds' API guidelines show them.

Every list endpoint takes ``page`` (from 1) and ``per_page`` (default 100, at most 1000) and
answers::

    {"data": [...],
     "meta": {"page": 2, "per_page": 100, "total": 250, "total_pages": 3, ...},
     "links": {"self": "/api/v1/x?page=2&per_page=100", "next": "...?page=3...",
               "last": "...?page=3..."}}

``next`` is null on the last page. An empty list still has one (empty) page, so ``last``
always names a page that answers. A page past the last answers an empty ``data`` (the list
may have shrunk since the client read ``total``), not an error.

A handler parses the request with :func:`parse_page`, asks storage for ``limit`` rows from
``offset`` plus the total, and returns :func:`paged` (``links`` sit beside ``data`` and
``meta``, so the answer is built here rather than by the app's ``(data, meta)`` envelope).
Nothing here touches storage, so it serves any list (gateways, the model, alerts, the
audit log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec

from hub.api.http import Ctx, Raw
from hub.errors import bad_param, make_meta
from hub.storage import current_note

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
# Keeps offset = (page - 1) * per_page far inside a signed 64-bit integer on both engines.
MAX_PAGE = 10_000_000

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def limit(self) -> int:
        return self.per_page


def _positive(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    # isascii: str.isdigit() also accepts digits like "²" that int() rejects.
    value = int(text) if text.isascii() and text.isdigit() and len(text) < 12 else 0
    if not 1 <= value <= maximum:
        raise bad_param(name, f"must be an integer from 1 to {maximum}, got {raw!r}")
    return value


def parse_page(params: Mapping[str, str], default_per_page: int = DEFAULT_PER_PAGE) -> PageRequest:
    """``page`` and ``per_page`` from the query; 400 naming the parameter when out of range."""
    return PageRequest(
        page=_positive(params, "page", 1, MAX_PAGE),
        per_page=_positive(params, "per_page", default_per_page, MAX_PER_PAGE),
    )


def total_pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def _link(path: str, params: Mapping[str, str], page: int, per_page: int) -> str:
    # The client's other parameters (filters) stay in every link, in the order it gave them.
    query = {k: v for k, v in params.items() if k not in ("page", "per_page")}
    query.update(page=str(page), per_page=str(per_page))
    return f"{path}?{urlencode(query)}"


def page_meta(request: PageRequest, total: int) -> dict[str, int]:
    return {
        "page": request.page,
        "per_page": request.per_page,
        "total": total,
        "total_pages": total_pages(total, request.per_page),
    }


def page_links(
    path: str, params: Mapping[str, str], request: PageRequest, total: int
) -> dict[str, str | None]:
    last = total_pages(total, request.per_page)
    has_next = request.page < last
    return {
        "self": _link(path, params, request.page, request.per_page),
        "next": _link(path, params, request.page + 1, request.per_page) if has_next else None,
        "last": _link(path, params, last, request.per_page),
    }


def page_body(
    request_id: str,
    data: list[Any],
    request: PageRequest,
    total: int,
    path: str,
    params: Mapping[str, str],
    extra_meta: Mapping[str, Any] | None = None,
) -> bytes:
    """The envelope of one page: ``data``, ``meta`` (the hub's request id and time, then
    ``extra_meta``, then the page numbers) and ``links``."""
    # count: the rows of this page, as the lists answered before they were paged.
    meta = {**(extra_meta or {}), "count": len(data)}
    meta.update(page_meta(request, total))
    links = page_links(path, params, request, total)
    return _encode({"data": data, "meta": make_meta(request_id, meta), "links": links})


def paged(
    ctx: Ctx,
    data: list[Any],
    request: PageRequest,
    total: int,
    extra_meta: Mapping[str, Any] | None = None,
) -> Raw:
    """A handler's answer for one page of a list (links point at the path it was asked on)."""
    # Imported here: hub.app imports the handler modules that import this one.

    path = str(ctx.request.url.path)
    note = current_note()
    if note is not None and note.lag_s is not None:  # read on the read database
        extra_meta = {**(extra_meta or {}), "lag_s": note.lag_s}
    return Raw(200, page_body(ctx.request_id, data, request, total, path, ctx.params, extra_meta))

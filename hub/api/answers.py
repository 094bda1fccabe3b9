"""Answers other than a plain 200 envelope: 201 with the created object, 204 without a body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.errors import success_body

if TYPE_CHECKING:
    from hub.app import Ctx, Raw


def created(ctx: Ctx, data: Any, meta: dict[str, Any] | None = None) -> Raw:
    from hub.app import Raw  # hub.app imports the handler modules lazily, in routes()

    return Raw(201, success_body(data, ctx.request_id, meta))


def no_content() -> Raw:
    from hub.app import Raw

    return Raw(204, b"")

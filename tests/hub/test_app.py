"""The endpoint wrapper: unexpected exceptions become a 500 envelope, never a traceback."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

from hub.api.http import Ctx
from hub.app import Hub
from hub.config import HubSettings
from hub.storage import Storage


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str], description: bytes) -> None:
        self.status_code, self.headers, self.description = status_code, headers, description


class FakeRequest:
    headers: dict[str, str] = {}
    path_params: dict[str, str] = {}
    body = ""


def test_unexpected_exception_is_500_internal(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "hub.db"))
    storage.init_schema()
    hub = Hub(HubSettings(), storage)

    def explode(ctx: Ctx) -> Any:
        raise RuntimeError("secret detail /etc/passwd")

    robyn = types.SimpleNamespace(Response=FakeResponse)
    handler = hub.endpoint(robyn, "GET", "/x", None, explode)  # type: ignore[arg-type]
    response = handler(FakeRequest())
    assert response.status_code == 500
    body = json.loads(response.description)
    assert body["error"]["code"] == "internal"
    assert "secret" not in response.description.decode()
    assert hub.inflight == 0
    storage.close()

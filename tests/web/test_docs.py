"""/docs in a real browser: Swagger UI renders the hub's OpenAPI 3.1 document, offline.

Swagger UI 4 fetched the document and showed "Unable to render this definition" (it reads
3.0 only); the operations list is what a person opens /docs for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.web.conftest import Console, check_clean, start_console


@pytest.fixture
def docs_console(tmp_path: Path, browser: Browser) -> Iterator[Console]:
    # /docs reads no storage: one engine is enough.
    found = start_console("sqlite", tmp_path, browser, None)
    try:
        yield found
        check_clean(found)
    finally:
        found.close()
        found.hub.stop()


def test_docs_renders_the_operations(docs_console: Console) -> None:
    page = docs_console.page()
    page.goto(f"{docs_console.url}/docs")
    ingest = page.locator(".opblock-summary-path[data-path='/api/v1/ingest']")
    ingest.wait_for(timeout=30_000)
    assert "Unable to render" not in page.content()
    assert page.locator(".opblock").count() > 20
    # The document's own title and version, as Swagger UI reads them from /openapi.json.
    assert page.locator(".info .title").inner_text().strip() != ""

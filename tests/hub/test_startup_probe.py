"""/health/startup's check: not started until the schema is at this release's version."""

from __future__ import annotations

from hub.api.health import StartupProbe, expected_version
from hub.storage import open_storage


def test_not_started_before_migrations_then_started(database_url: str) -> None:
    storage = open_storage(database_url)
    try:
        probe = StartupProbe(storage)
        started, have, want = probe.check()
        assert (started, have) == (False, 0)
        assert want == expected_version(storage) >= 1
        storage.migrate()
        assert probe.check() == (True, want, want)
    finally:
        storage.close()

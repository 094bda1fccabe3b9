"""What the whole suite shares: one PostgreSQL server for the session (tests/pg.py), whose
databases the hub, console and fault tests each make fresh (``create_database``) instead of
each directory starting a server of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()

"""A periodic job's lead holds a PostgreSQL connection of its own (hub.storage.postgres.lead):
it is opened with the same bounds as the pool's (connect timeout per host, TCP keepalives,
tcp_user_timeout), so a lead on a primary cut off the network is given up in seconds."""

from __future__ import annotations

from hub.storage import Waits, open_storage
from hub.storage.postgres.reach import connect_options
from tests.pg import PgServer


def test_a_lead_connects_with_the_pools_bounds(pg_server: PgServer) -> None:
    waits = Waits(connect_s=2.0, pool_s=2.0)
    storage = open_storage(pg_server.create_database(), waits)
    try:
        storage.migrate()
        assert storage.try_lead("job")
        conn = storage.dialect._leads._leads["job"]  # type: ignore[attr-defined]
        params = conn.info.get_parameters()
        for name, value in connect_options(waits).items():
            assert params.get(name) == str(value), (name, params)
    finally:
        storage.close()

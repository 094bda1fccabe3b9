"""A streaming standby of a test's PostgreSQL server (tests/pg.py): ``pg_basebackup -R``
copies the primary's data directory and writes the settings that make the copy follow it, and
the copy starts as a hot standby on a port of its own. Replication connections need nothing
more: the primary's initdb trusts them from the local machine."""

from __future__ import annotations

import shutil
from typing import Any

import psycopg

from tests.pg import PgServer


class PgStandby(PgServer):
    def __init__(self, primary: PgServer) -> None:
        super().__init__()
        self.primary = primary

    def start(self) -> PgStandby:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "pg_basebackup",
            "-D",
            str(self.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            self.primary.user,
            "-R",  # standby.signal and primary_conninfo: start as this primary's standby
            "-X",
            "stream",
            "-c",
            "fast",
        )
        self._options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c hot_standby=on",
                "-c max_connections=200",
            ]
        )
        self.restart()
        return self

    def sql(self, statement: str) -> Any:
        """The first column of the first row ``statement`` answers on the standby."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute(statement).fetchone()
        return None if row is None else row[0]

"""Leadership among hub processes on one PostgreSQL database: a session advisory lock per
job, held by a connection of its own (outside the pool) for as long as this process leads.
If that connection breaks, the lock is gone with it and the next call tries again."""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import psycopg

from hub.storage.model import Waits
from hub.storage.postgres.reach import connect_options

# Advisory keys of jobs are (namespace, crc32(job)) pairs: two int4s, apart from the
# single-bigint keys of migrations and partitions.
NAMESPACE = 0x65646765  # "edge"


class AdvisoryLeads:
    """The jobs this process leads, each by an advisory lock on a connection of its own."""

    def __init__(self, url: str, waits: Waits) -> None:
        self.url = url
        self.waits = waits
        self._leads: dict[str, psycopg.Connection[Any]] = {}

    def try_lead(self, job: str) -> bool:
        conn = self._leads.get(job)
        if conn is not None and not conn.closed and not conn.broken:
            return True
        self._leads.pop(job, None)
        key = zlib.crc32(job.encode()) & 0x7FFFFFFF
        try:
            # Bounded as the pool's connections are: a lead held over a connection to a
            # primary cut off the network is given up in seconds, not kept for minutes.
            conn = psycopg.connect(self.url, autocommit=True, **connect_options(self.waits))
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (NAMESPACE, key)).fetchone()
        except psycopg.Error:
            return False
        if row is None or not row[0]:
            conn.close()
            return False
        self._leads[job] = conn
        return True

    def release_leads(self) -> None:
        leads, self._leads = self._leads, {}
        for conn in leads.values():
            with contextlib.suppress(psycopg.Error):
                conn.close()  # the session's advisory locks go with it

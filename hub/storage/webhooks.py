"""The webhook outbox's cursors: which event each URL got last, and which hub process
sends to it (a lease). The events themselves are written by every alert transition
(hub.storage.alert_rows.announce); the sender is hub.notify."""

from __future__ import annotations

from typing import Any

from hub.storage.sqlbase import Database
from shared.timeutil import now


class Webhooks:
    def __init__(self, db: Database) -> None:
        self._db = db

    def alert_events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            "SELECT id, event_id, event, alert_id, at, payload FROM alert_events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )

    def webhook_lease(self, url: str, owner: str, lease_s: float) -> int | None:
        """Take (or renew) the right to send to ``url``: the id of the last event delivered
        there, or None when there is nothing to send or another hub process holds it. A new
        URL starts at the newest event: it gets what happens from now on, not the history."""
        at = now()
        # A read first: the sender asks twice a second, and an idle hub should not take the
        # write lock (SQLite: one writer, shared with ingest) to learn that nothing is new.
        with self._db.reader(snapshot=True) as conn:
            cursor = conn.execute(
                "SELECT last_event, lease_owner, lease_until FROM webhook_cursors WHERE url = ?",
                (url,),
            ).fetchone()
            top = int(conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0])
        if cursor is not None:
            last, holder, until = int(cursor[0]), cursor[1], cursor[2]
            if last >= top:
                return None  # nothing new
            if holder not in (None, owner) and until is not None and until >= at:
                return None  # another process delivers to this URL
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO webhook_cursors (url, last_event) "
                "VALUES (?, (SELECT coalesce(max(id), 0) FROM alert_events)) "
                "ON CONFLICT (url) DO NOTHING",
                (url,),
            )
            row = conn.execute(
                "UPDATE webhook_cursors SET lease_owner = ?, lease_until = ? WHERE url = ? "
                "AND (lease_owner = ? OR lease_until IS NULL OR lease_until < ?) "
                "RETURNING last_event",
                (owner, at + lease_s, url, owner, at),
            ).fetchone()
        return None if row is None else int(row[0])

    def webhook_renew(self, url: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease on ``url`` to ``lease_s`` from now; False when another hub
        process holds it (the caller must send nothing more: the new holder delivers). Only
        the owner named in the row renews: a lease that ran out and nobody took is still
        this owner's, since taking it over names the new owner in the same statement."""
        with self._db.write() as conn:
            return bool(
                conn.execute(
                    "UPDATE webhook_cursors SET lease_until = ? WHERE url = ? AND lease_owner = ?",
                    (now() + lease_s, url, owner),
                ).rowcount
            )

    def webhook_delivered(self, url: str, owner: str, event: int) -> bool:
        """Move ``url``'s cursor past ``event``; False when the lease was lost meanwhile."""
        with self._db.write() as conn:
            return bool(
                conn.execute(
                    "UPDATE webhook_cursors SET last_event = ? WHERE url = ? AND lease_owner = ? "
                    "AND last_event < ?",
                    (event, url, owner, event),
                ).rowcount
            )

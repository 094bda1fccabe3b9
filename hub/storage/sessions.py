"""Console sessions (hub.web.session): one row per signed-in browser, in the hub's database
so that every hub process (``workers > 1``, several hosts on PostgreSQL) knows every session.

A row keeps hashes only: ``id_hash`` is sha256 of the cookie's value and ``token_hash`` is
the hash the tokens table already keys on, so a stolen database copy signs nobody in, and a
revoked token ends its sessions at their next request (the lookup joins the token). The CSRF
secret is the one value stored as is: it is no credential without the cookie.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.storage.sqlbase import SqlStorage
from shared.timeutil import now


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: str
    csrf: str
    created_at: float
    expires_at: float


class SessionsMixin(SqlStorage):
    def create_session(
        self, id_hash: str, token_hash: str, csrf: str, expires_at: float, max_per_token: int
    ) -> int:
        """Store a new session; a token's oldest sessions beyond ``max_per_token`` end.
        Returns how many ended that way."""
        at = now()
        with self._write() as conn:
            # Sign-ins of one token queue on its row (a no-op update takes the row lock on
            # PostgreSQL; SQLite writes one at a time anyway), so two processes signing the
            # same token in at once cannot both keep a session past the cap.
            conn.execute("UPDATE tokens SET revoked = revoked WHERE hash = ?", (token_hash,))
            # Expired rows go here, at sign-in, rather than in a job: sign-ins are rare and
            # the expiry index makes this one short range delete.
            conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (at,))
            conn.execute(
                "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (id_hash, token_hash, csrf, at, expires_at),
            )
            cur = conn.execute(
                "DELETE FROM console_sessions WHERE token_hash = ? AND id_hash NOT IN ("
                "SELECT id_hash FROM console_sessions WHERE token_hash = ? "
                "ORDER BY created_at DESC, id_hash = ? DESC LIMIT ?)",
                (token_hash, token_hash, id_hash, max_per_token),
            )
            return max(cur.rowcount, 0)

    def session_by_hash(self, id_hash: str) -> SessionRow | None:
        """The live session of that cookie hash; None when unknown or expired."""
        row = self._fetchone(
            "SELECT token_hash, csrf, created_at, expires_at FROM console_sessions "
            "WHERE id_hash = ? AND expires_at > ?",
            (id_hash, now()),
        )
        if row is None:
            return None
        return SessionRow(str(row[0]), str(row[1]), float(row[2]), float(row[3]))

    def delete_session(self, id_hash: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))
            return cur.rowcount > 0

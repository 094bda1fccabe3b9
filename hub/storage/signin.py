"""Failed console sign-ins, counted in the database (hub.web.throttle decides from them).

One row per key (a source address, or the hash of a presented token) with the number of
attempts in the current window and when that window began. Every hub process (``workers >
1``, several hosts on PostgreSQL) counts into the same rows, so spreading guesses over
processes gains nothing. Each attempt is one ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` per key: the database serialises concurrent attempts on a key, so no two
processes both see "one attempt left".
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.storage.sqlbase import SqlStorage

# A window that ended restarts at this attempt; otherwise the attempt adds to it. SET sees
# the row as it was, on both engines, so both expressions test the old window.
_ATTEMPT = """
INSERT INTO console_sign_in_attempts (key, attempts, window_start) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    attempts = CASE WHEN console_sign_in_attempts.window_start <= ?
                    THEN 1 ELSE console_sign_in_attempts.attempts + 1 END,
    window_start = CASE WHEN console_sign_in_attempts.window_start <= ?
                        THEN excluded.window_start ELSE console_sign_in_attempts.window_start END
RETURNING attempts, window_start
"""


class SignInMixin(SqlStorage):
    def sign_in_attempt(
        self, keys: Sequence[str], at: float, window_s: float
    ) -> list[tuple[int, float]]:
        """Count one attempt against each key: (attempts in its window, window start) each,
        in the order of ``keys``. Windows that ended before ``at`` are dropped here."""
        expired = at - window_s
        found: list[tuple[int, float]] = []
        with self._write() as conn:
            conn.execute("DELETE FROM console_sign_in_attempts WHERE window_start <= ?", (expired,))
            for key in keys:
                row = conn.execute(_ATTEMPT, (key, at, expired, expired)).fetchone()
                found.append((int(row[0]), float(row[1])))
        return found

    def sign_in_forgive(self, counted: Sequence[str], cleared: Sequence[str]) -> None:
        """After a good sign-in: take its attempt back from ``counted`` keys (the address:
        a person who signs in is not guessing) and forget ``cleared`` keys (the token)."""
        with self._write() as conn:
            for key in counted:
                conn.execute(
                    "UPDATE console_sign_in_attempts SET attempts = attempts - 1 "
                    "WHERE key = ? AND attempts > 0",
                    (key,),
                )
            for key in cleared:
                conn.execute("DELETE FROM console_sign_in_attempts WHERE key = ?", (key,))

"""Who may do what: gateways and tokens (the admin writes and the lookup behind every
request), console sessions (hub.web.session), and the console sign-in throttle
(hub.web.throttle).

Sessions: one row per signed-in browser, in the hub's database so that every hub process
(``workers > 1``, several hosts on PostgreSQL) knows every session. A row keeps hashes only:
``id_hash`` is sha256 of the cookie's value and ``token_hash`` is the hash the tokens table
already keys on, so a stolen database copy signs nobody in, and a revoked token ends its
sessions at their next request (the lookup joins the token). The CSRF secret is the one value
stored as is: it is no credential without the cookie.

Sign-in throttle: one row per key (a source address, or the hash of a presented token) with
the number of attempts in the current window and when that window began. Every hub process
counts into the same rows, so spreading guesses over processes gains nothing. Each attempt is
one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` per key: the database serialises
concurrent attempts on a key, so no two processes both see "one attempt left".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.auth import Role, TokenRecord
from hub.storage.model import Conflict, SessionRow, UnknownFactory
from hub.storage.sqlbase import Conn, Database, dicts
from shared.timeutil import now

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


def factory_id(conn: Conn, name: str) -> int:
    """The id of factory ``name``, created if new."""
    conn.execute(
        "INSERT INTO factories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, now()),
    )
    row = conn.execute("SELECT id FROM factories WHERE name = ?", (name,)).fetchone()
    return int(row[0])


class Access:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- gateways and tokens -------------------------------------------------------------

    def add_gateway(self, name: str, factory: str, token_hash: str, *, rotate: bool = False) -> int:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT g.id, f.name FROM gateways g JOIN factories f ON f.id = g.factory_id "
                "WHERE g.name = ?",
                (name,),
            ).fetchone()
            if row is not None:
                gateway_id, current_factory = int(row[0]), str(row[1])
                if not rotate:
                    raise Conflict(f"gateway {name!r} already exists (factory {current_factory!r})")
                if current_factory != factory:
                    raise Conflict(
                        f"gateway {name!r} belongs to factory {current_factory!r}, not {factory!r}"
                    )
                conn.execute("UPDATE tokens SET revoked = TRUE WHERE gateway_id = ?", (gateway_id,))
                conn.execute("UPDATE gateways SET revoked = FALSE WHERE id = ?", (gateway_id,))
            else:
                fid = factory_id(conn, factory)
                gateway_id = int(
                    conn.execute(
                        "INSERT INTO gateways (name, factory_id, created_at) VALUES (?, ?, ?) "
                        "RETURNING id",
                        (name, fid, now()),
                    ).fetchone()[0]
                )
            conn.execute(
                "INSERT INTO tokens (hash, role, gateway_id, created_at) "
                "VALUES (?, 'gateway', ?, ?)",
                (token_hash, gateway_id, now()),
            )
        return gateway_id

    def add_token(
        self,
        role: Role,
        token_hash: str,
        factories: Sequence[str] = (),
        name: str | None = None,
    ) -> int:
        """A person's token; ``factories`` (names) limit what it sees, none: every factory;
        ``name`` labels it. UnknownFactory, and nothing stored, when a factory does not
        exist."""
        if role == "gateway":
            raise ValueError("gateway tokens are made by add_gateway")
        with self._db.write() as conn:
            ids: list[int] = []
            for factory in dict.fromkeys(factories):
                found = conn.execute(
                    "SELECT id FROM factories WHERE name = ?", (factory,)
                ).fetchone()
                if found is None:
                    raise UnknownFactory(f"no factory {factory!r}")
                ids.append(int(found[0]))
            row = conn.execute(
                "INSERT INTO tokens (hash, role, name, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (token_hash, role, name, now()),
            ).fetchone()
            conn.executemany(
                "INSERT INTO token_factories (token_id, factory_id) VALUES (?, ?)",
                [(row[0], fid) for fid in ids],
            )
            return int(row[0])

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        # Every request asks this: an unscoped token costs no second query.
        row = self._db.fetchone(
            "SELECT t.id, t.hash, t.role, t.revoked, g.id, g.name, g.factory_id, g.revoked, "
            "EXISTS (SELECT 1 FROM token_factories tf WHERE tf.token_id = t.id), t.name "
            "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id WHERE t.hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        factories = None
        if row[8]:
            found = self._db.fetchall(
                "SELECT factory_id FROM token_factories WHERE token_id = ?", (row[0],)
            )
            factories = frozenset(int(r[0]) for r in found)
        return TokenRecord(
            id=row[0],
            hash=row[1],
            role=row[2],
            revoked=bool(row[3]) or bool(row[7]),
            gateway_id=row[4],
            gateway_name=row[5],
            factory_id=row[6],
            factories=factories,
            name=row[9],
        )

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token, with ``factories``: the names of those it is limited to ([]: all)."""
        with self._db.reader(snapshot=True) as conn:
            rows = dicts(
                conn.execute(
                    "SELECT t.id, t.name, t.role, g.name AS gateway, t.created_at, "
                    "(t.revoked OR coalesce(g.revoked, FALSE)) AS revoked "
                    "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id ORDER BY t.id"
                )
            )
            scopes: dict[int, list[str]] = {}
            for token_id, name in conn.execute(
                "SELECT tf.token_id, f.name FROM token_factories tf "
                "JOIN factories f ON f.id = tf.factory_id ORDER BY f.name"
            ).fetchall():
                scopes.setdefault(int(token_id), []).append(str(name))
        for row in rows:
            row["revoked"] = bool(row["revoked"])
            row["factories"] = scopes.get(int(row["id"]), [])
        return rows

    def revoke_token(self, token_id: int) -> bool:
        with self._db.write() as conn:
            cur = conn.execute("UPDATE tokens SET revoked = TRUE WHERE id = ?", (token_id,))
            return cur.rowcount > 0

    def revoke_gateway(self, name: str) -> bool:
        with self._db.write() as conn:
            row = conn.execute("SELECT id FROM gateways WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE gateways SET revoked = TRUE WHERE id = ?", (row[0],))
            conn.execute("UPDATE tokens SET revoked = TRUE WHERE gateway_id = ?", (row[0],))
        return True

    # -- console sessions ----------------------------------------------------------------

    def create_session(
        self, id_hash: str, token_hash: str, csrf: str, expires_at: float, max_per_token: int
    ) -> int:
        """Store a new session; a token's oldest sessions beyond ``max_per_token`` end.
        Returns how many ended that way."""
        at = now()
        with self._db.write() as conn:
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

    def create_user_session(
        self,
        id_hash: str,
        user_id: int,
        csrf: str,
        times: tuple[float, float],
        max_per_user: int,
    ) -> int:
        """Store a new session of a person; ``times`` is (expires_at, idle_s). Their oldest
        sessions beyond ``max_per_user`` end; returns how many ended that way."""
        expires_at, idle_s = times
        owner = f"user:{user_id}"
        at = now()
        with self._db.write() as conn:
            # As for a token: sign-ins of one person queue on their row.
            conn.execute("UPDATE users SET failures = failures WHERE id = ?", (user_id,))
            conn.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at + idle_s <= ?",
                (at, at),
            )
            conn.execute(
                "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, "
                "expires_at, user_id, idle_s, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (id_hash, owner, csrf, at, expires_at, user_id, idle_s, at),
            )
            cur = conn.execute(
                "DELETE FROM console_sessions WHERE token_hash = ? AND id_hash NOT IN ("
                "SELECT id_hash FROM console_sessions WHERE token_hash = ? "
                "ORDER BY created_at DESC, id_hash = ? DESC LIMIT ?)",
                (owner, owner, id_hash, max_per_user),
            )
            return max(cur.rowcount, 0)

    def session_by_hash(self, id_hash: str, at: float | None = None) -> SessionRow | None:
        """The live session of that cookie hash at ``at`` (default now); None when unknown,
        past its lifetime or (a person's) idle longer than its idle timeout."""
        at = now() if at is None else at
        row = self._db.fetchone(
            "SELECT token_hash, csrf, created_at, expires_at, user_id, idle_s, last_seen_at "
            "FROM console_sessions WHERE id_hash = ? AND expires_at > ? "
            "AND (idle_s IS NULL OR last_seen_at + idle_s > ?)",
            (id_hash, at, at),
        )
        if row is None:
            return None
        return SessionRow(
            str(row[0]),
            str(row[1]),
            float(row[2]),
            float(row[3]),
            None if row[4] is None else int(row[4]),
            None if row[5] is None else float(row[5]),
            None if row[6] is None else float(row[6]),
        )

    def touch_session(self, id_hash: str, at: float) -> None:
        """A person's session was used at ``at``: its idle timeout starts again."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE console_sessions SET last_seen_at = ? "
                "WHERE id_hash = ? AND last_seen_at < ?",
                (at, id_hash, at),
            )

    def delete_session(self, id_hash: str) -> bool:
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))
            return cur.rowcount > 0

    # -- console sign-in throttle --------------------------------------------------------

    def sign_in_attempt(
        self, keys: Sequence[str], at: float, window_s: float
    ) -> list[tuple[int, float]]:
        """Count one attempt against each key: (attempts in its window, window start) each,
        in the order of ``keys``. Windows that ended before ``at`` are dropped here."""
        expired = at - window_s
        found: list[tuple[int, float]] = []
        with self._db.write() as conn:
            conn.execute("DELETE FROM console_sign_in_attempts WHERE window_start <= ?", (expired,))
            for key in keys:
                row = conn.execute(_ATTEMPT, (key, at, expired, expired)).fetchone()
                found.append((int(row[0]), float(row[1])))
        return found

    def sign_in_forgive(self, counted: Sequence[str], cleared: Sequence[str]) -> None:
        """After a good sign-in: take its attempt back from ``counted`` keys (the address:
        a person who signs in is not guessing) and forget ``cleared`` keys (the token)."""
        with self._db.write() as conn:
            for key in counted:
                conn.execute(
                    "UPDATE console_sign_in_attempts SET attempts = attempts - 1 "
                    "WHERE key = ? AND attempts > 0",
                    (key,),
                )
            for key in cleared:
                conn.execute("DELETE FROM console_sign_in_attempts WHERE key = ?", (key,))

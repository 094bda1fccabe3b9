"""People's accounts (hub.user_names, hub.passwords): who they are, their role and
factories, and the state of their sign-in (password hash, setup link, failures, lock).

Rows are found by ``name_key`` (the case-folded NFC name), so two spellings of one name are
one account. Reads hand back a user's public fields only; the password hash leaves this
module through :meth:`Users.credentials` alone, for the sign-in that verifies it.

An admin's change (``by``: who made it) is in the change log with the change, in its own
transaction: ``user.create``, ``user.update`` (role, factories, display: each changed field
from and to), ``user.disable``, ``user.enable``, ``user.unlock``, ``user.reset_password``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage.changelog import AuditEntry, Who, write_entry
from hub.storage.model import Conflict
from hub.storage.model import UnknownFactory as UnknownFactory  # named here by hub.cli.users
from hub.storage.sqlbase import Conn, Database, dicts
from shared.timeutil import now

_PUBLIC = (
    "SELECT id, name, display, role, disabled, failures, locked_until, password_changed_at, "
    "created_at, password_hash IS NOT NULL AS has_password FROM users"
)


@dataclass(frozen=True, slots=True)
class SessionUser:
    """Who a person's console session is for, as the account is now."""

    id: int
    name: str
    display: str
    role: str
    # None: every factory; else the ids of the factories they are limited to.
    factories: frozenset[int] | None


def _end_sessions(conn: Conn, user_id: int) -> None:
    """Every console session of the user ends: their account changed in a way that must
    reach every open console at once (disabled, password, role or factories)."""
    conn.execute("DELETE FROM console_sessions WHERE user_id = ?", (user_id,))


# One failed sign-in; SET sees the row as it was on both engines. A lock that ran out
# starts the count again; reaching ``limit`` locks the account until ``at + lock_s``.
_FAILED = """
UPDATE users SET
    failures = CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN 1
                    ELSE failures + 1 END,
    locked_until = CASE
        WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= ? THEN 1
                   ELSE failures + 1 END) >= ? THEN ?
        ELSE NULL END
WHERE id = ? AND (locked_until IS NULL OR locked_until <= ?)
RETURNING failures, locked_until
"""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a sign-in needs to decide, for one account."""

    id: int
    name: str
    password_hash: str | None
    disabled: bool
    locked_until: float | None
    failures: int


def _factory_ids(conn: Conn, names: Sequence[str]) -> list[int]:
    ids: list[int] = []
    for name in dict.fromkeys(names):
        row = conn.execute("SELECT id FROM factories WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownFactory(f"no factory {name!r}")
        ids.append(int(row[0]))
    return ids


def _set_factories(conn: Conn, user_id: int, names: Sequence[str]) -> None:
    ids = _factory_ids(conn, names)
    conn.execute("DELETE FROM user_factories WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO user_factories (user_id, factory_id) VALUES (?, ?)",
        [(user_id, fid) for fid in ids],
    )


def _audit(
    conn: Conn, by: Who, action: str, name: str, detail: dict[str, Any] | None = None
) -> None:
    write_entry(conn, AuditEntry(by, action, "user", name, detail))


def _views(conn: Conn, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    rows = dicts(conn.execute(f"{_PUBLIC} {where}", params))
    scopes: dict[int, list[str]] = {}
    for user_id, factory in conn.execute(
        "SELECT uf.user_id, f.name FROM user_factories uf "
        "JOIN factories f ON f.id = uf.factory_id ORDER BY f.name"
    ).fetchall():
        scopes.setdefault(int(user_id), []).append(str(factory))
    for row in rows:
        row["disabled"] = bool(row["disabled"])
        row["has_password"] = bool(row["has_password"])
        row["factories"] = scopes.get(int(row["id"]), [])
    return rows


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        key: str,
        *,
        role: str,
        display: str = "",
        factories: Sequence[str] = (),
        password_hash: str | None = None,
        setup: tuple[str, float] | None = None,
        by: Who,
    ) -> dict[str, Any]:
        """A new account; Conflict when ``key`` is taken, UnknownFactory for a factory that
        does not exist. ``setup``: (sha256 of the setup link's token, when it expires)."""
        at = now()
        setup_hash, setup_expires = setup if setup else (None, None)
        with self._db.write() as conn:
            row = conn.execute(
                "INSERT INTO users (name, name_key, display, role, password_hash, "
                "password_changed_at, setup_hash, setup_expires_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name_key) DO NOTHING "
                "RETURNING id",
                (
                    name,
                    key,
                    display,
                    role,
                    password_hash,
                    at if password_hash else None,
                    setup_hash,
                    setup_expires,
                    at,
                ),
            ).fetchone()
            if row is None:
                raise Conflict(f"user {name!r} already exists")
            _set_factories(conn, int(row[0]), factories)
            made = _views(conn, "WHERE id = ?", (int(row[0]),))[0]
            detail = {k: made[k] for k in ("role", "display", "factories")}
            detail["password"] = "set" if password_hash else "setup link"
            _audit(conn, by, "user.create", name, detail)
            return made

    def get(self, key: str) -> dict[str, Any] | None:
        with self._db.reader(snapshot=True) as conn:
            found = _views(conn, "WHERE name_key = ?", (key,))
        return found[0] if found else None

    def list(self) -> list[dict[str, Any]]:
        with self._db.reader(snapshot=True) as conn:
            return _views(conn, "ORDER BY name_key", ())

    def update(
        self,
        key: str,
        *,
        role: str | None = None,
        display: str | None = None,
        disabled: bool | None = None,
        factories: Sequence[str] | None = None,
        by: Who,
    ) -> dict[str, Any] | None:
        """Change the fields given; None when there is no such user. Only what really
        changed is in the change log (a PATCH repeating the current values writes no row)."""
        with self._db.write() as conn:
            found = _views(conn, "WHERE name_key = ?", (key,))
            if not found:
                return None
            before = found[0]
            user_id = int(before["id"])
            for column, value in (("role", role), ("display", display), ("disabled", disabled)):
                if value is not None:
                    conn.execute(f"UPDATE users SET {column} = ? WHERE id = ?", (value, user_id))
            if factories is not None:
                _set_factories(conn, user_id, factories)
            # What a session may do was decided at sign-in by these: a new sign-in decides
            # again. A display name changes nothing a session may do.
            if role is not None or disabled is not None or factories is not None:
                _end_sessions(conn, user_id)
            after = _views(conn, "WHERE id = ?", (user_id,))[0]
            changed = {
                k: {"from": before[k], "to": after[k]}
                for k in ("role", "factories", "display")
                if before[k] != after[k]
            }
            if changed:
                _audit(conn, by, "user.update", after["name"], changed)
            if before["disabled"] != after["disabled"]:
                action = "user.disable" if after["disabled"] else "user.enable"
                _audit(conn, by, action, after["name"])
            return after

    def unlock(self, key: str, *, by: Who) -> bool:
        with self._db.write() as conn:
            row = conn.execute(
                "UPDATE users SET failures = 0, locked_until = NULL WHERE name_key = ? "
                "RETURNING name",
                (key,),
            ).fetchone()
            if row is None:
                return False
            _audit(conn, by, "user.unlock", str(row[0]))
            return True

    def reset_password(self, key: str, setup_hash: str, expires_at: float, *, by: Who) -> bool:
        """The old password stops working (and with it the user's sessions: its change time
        moves); the new setup link sets the next one."""
        with self._db.write() as conn:
            row = conn.execute(
                "UPDATE users SET password_hash = NULL, password_changed_at = ?, "
                "setup_hash = ?, setup_expires_at = ? WHERE name_key = ? RETURNING id, name",
                (now(), setup_hash, expires_at, key),
            ).fetchone()
            if row is None:
                return False
            _end_sessions(conn, int(row[0]))
            _audit(conn, by, "user.reset_password", str(row[1]))
            return True

    def setup_user(self, setup_hash: str) -> str | None:
        """The name of the account a live setup link is for, or None."""
        row = self._db.fetchone(
            "SELECT name FROM users WHERE setup_hash = ? AND setup_expires_at > ?",
            (setup_hash, now()),
        )
        return None if row is None else str(row[0])

    def finish_setup(self, setup_hash: str, password_hash: str) -> tuple[int, str] | None:
        """Set the password of the account a live setup link is for and spend the link;
        the account's (id, name), or None when the link is unknown, spent or expired."""
        at = now()
        with self._db.write() as conn:
            row = conn.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ?, setup_hash = NULL, "
                "setup_expires_at = NULL, failures = 0, locked_until = NULL "
                "WHERE setup_hash = ? AND setup_expires_at > ? RETURNING id, name",
                (password_hash, at, setup_hash, at),
            ).fetchone()
            if row is not None:
                _end_sessions(conn, int(row[0]))
        return None if row is None else (int(row[0]), str(row[1]))

    def set_password(self, key: str, password_hash: str, *, changed: bool = True) -> bool:
        """Store a new hash. ``changed`` False: the same password rehashed with today's
        parameters, which is no change for the user's sessions."""
        sql = "UPDATE users SET password_hash = ?"
        params: list[Any] = [password_hash]
        if changed:
            sql += ", password_changed_at = ?"
            params.append(now())
        with self._db.write() as conn:
            row = conn.execute(sql + " WHERE name_key = ? RETURNING id", (*params, key)).fetchone()
            if row is not None and changed:
                _end_sessions(conn, int(row[0]))
            return row is not None

    def credentials(self, key: str) -> Credentials | None:
        row = self._db.fetchone(
            "SELECT id, name, password_hash, disabled, locked_until, failures FROM users "
            "WHERE name_key = ?",
            (key,),
        )
        if row is None:
            return None
        return Credentials(
            int(row[0]),
            str(row[1]),
            row[2],
            bool(row[3]),
            None if row[4] is None else float(row[4]),
            int(row[5]),
        )

    def sign_in_failed(self, user_id: int, at: float, limit: int, lock_s: float) -> float | None:
        """Count a failed sign-in of an account that is not locked; when this one reaches
        ``limit`` consecutive failures the account is locked: returns until when (else
        None). A locked account counts nothing more (its lock is not prolonged)."""
        with self._db.write() as conn:
            row = conn.execute(_FAILED, (at, at, limit, at + lock_s, user_id, at)).fetchone()
        return None if row is None or row[1] is None else float(row[1])

    def sign_in_succeeded(self, user_id: int) -> None:
        """A good password: the count of consecutive failures starts again."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE users SET failures = 0, locked_until = NULL "
                "WHERE id = ? AND (failures <> 0 OR locked_until IS NOT NULL)",
                (user_id,),
            )

    def session_user(self, user_id: int) -> SessionUser | None:
        """The account behind a person's session, unless it is disabled or gone."""
        with self._db.reader(snapshot=True) as conn:
            row = conn.execute(
                "SELECT id, name, display, role FROM users WHERE id = ? AND NOT disabled",
                (user_id,),
            ).fetchone()
            if row is None:
                return None
            scope = conn.execute(
                "SELECT factory_id FROM user_factories WHERE user_id = ?", (user_id,)
            ).fetchall()
        factories = frozenset(int(r[0]) for r in scope) or None
        return SessionUser(int(row[0]), str(row[1]), str(row[2]), str(row[3]), factories)

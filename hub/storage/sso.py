"""Single sign-on's storage (hub.web.oidc): the sign-ins under way, and the accounts of people
who sign in through the plant's OpenID provider.

A sign-in under way is kept here, not in the browser or a process's memory, so the provider
may send the browser back to any hub process or host. An account from single sign-on is found
by the provider's (issuer, subject), never by its name: a name is only what the account is
shown as, and a local account that happens to carry the same name is a different person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from hub.storage.model import Conflict
from hub.storage.sqlbase import Conn, Database
from hub.storage.users import _end_sessions, _set_factories
from hub.user_names import MAX_NAME, name_key


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the provider's answer must match: the state, and what checks its tokens."""

    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class Person:
    """Who the provider vouched for, and what the group mapping gives them."""

    issuer: str
    subject: str
    # Tried in turn as the new account's name (the first that is free).
    names: Sequence[str]
    display: str
    role: str
    # Factory names; empty: every factory.
    factories: Sequence[str]


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: int
    name: str
    created: bool


class Disabled(Exception):
    """The person's account was disabled by an admin: single sign-on does not enable it."""


def _scope(conn: Conn, user_id: int) -> set[int]:
    rows = conn.execute(
        "SELECT factory_id FROM user_factories WHERE user_id = ?", (user_id,)
    ).fetchall()
    return {int(r[0]) for r in rows}


def _suffixed(name: str, subject: str) -> str:
    # A name taken by another account: the same name and a short mark of the subject, so
    # the account stays recognisable and is the same one at every sign-in.
    mark = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{mark}"


class SingleSignOn:
    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self, key_hash: str, pending: PendingLogin, expires_at: float, at: float) -> None:
        """Keep a sign-in under way until ``expires_at``; the expired ones of others go."""
        with self._db.write() as conn:
            conn.execute("DELETE FROM oidc_logins WHERE expires_at <= ?", (at,))
            conn.execute(
                "INSERT INTO oidc_logins (key_hash, state, nonce, code_verifier, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_hash, pending.state, pending.nonce, pending.code_verifier, expires_at),
            )

    def take(self, key_hash: str, at: float) -> PendingLogin | None:
        """The sign-in under way for ``key_hash``, spent by this call (a second answer from
        the provider with the same cookie finds nothing); None when unknown or expired."""
        with self._db.write() as conn:
            row = conn.execute(
                "DELETE FROM oidc_logins WHERE key_hash = ? "
                "RETURNING state, nonce, code_verifier, expires_at",
                (key_hash,),
            ).fetchone()
        if row is None or float(row[3]) <= at:
            return None
        return PendingLogin(str(row[0]), str(row[1]), str(row[2]))

    def sign_in(self, person: Person, at: float) -> SignedIn:
        """The account of ``person``, made at their first sign-in, else brought up to date
        (display name, role and factories as the group mapping says now; a change of role or
        factories ends the account's other sessions, as an admin's change would).

        UnknownFactory when the mapping names a factory that does not exist; Disabled when
        an admin disabled the account; Conflict when no name of ``person`` is free."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT id, name, role, disabled FROM users "
                "WHERE oidc_issuer = ? AND oidc_subject = ?",
                (person.issuer, person.subject),
            ).fetchone()
            if row is None:
                return self._create(conn, person, at)
            user_id, name = int(row[0]), str(row[1])
            if bool(row[3]):
                raise Disabled(name)
            before = _scope(conn, user_id)
            conn.execute(
                "UPDATE users SET display = ?, role = ? WHERE id = ?",
                (person.display, person.role, user_id),
            )
            _set_factories(conn, user_id, person.factories)
            if str(row[2]) != person.role or _scope(conn, user_id) != before:
                _end_sessions(conn, user_id)
            return SignedIn(user_id, name, False)

    def refused(self, issuer: str, subject: str) -> None:
        """The provider vouched for this person but the hub refuses them now (no mapped
        group any more): the sessions of their account, if they have one, end too."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT id FROM users WHERE oidc_issuer = ? AND oidc_subject = ?",
                (issuer, subject),
            ).fetchone()
            if row is not None:
                _end_sessions(conn, int(row[0]))

    def _create(self, conn: Conn, person: Person, at: float) -> SignedIn:
        candidates = [*person.names, *(_suffixed(n, person.subject) for n in person.names)]
        for name in candidates:
            # DO NOTHING on either unique key: a taken name tries the next; the same person
            # signing in twice at once is found by the caller's next sign-in.
            row = conn.execute(
                "INSERT INTO users (name, name_key, display, role, oidc_issuer, oidc_subject, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (
                    name,
                    name_key(name),
                    person.display,
                    person.role,
                    person.issuer,
                    person.subject,
                    at,
                ),
            ).fetchone()
            if row is not None:
                _set_factories(conn, int(row[0]), person.factories)
                return SignedIn(int(row[0]), name, True)
        raise Conflict(f"no free user name for {person.subject!r}")

"""SQLite schema steps for people (hub.storage.users): accounts of persons who sign in to the
console with a name and password."""

from __future__ import annotations

import sqlite3

from hub.storage.migrations import statements

# users: one row per person. name as given (NFC); name_key its case-folded form, unique, so
# "Anna" and "anna" are one account. Secrets are hashes only: password_hash is argon2id
# (hub.passwords), setup_hash sha256 of a one-time setup link's token. failures counts
# wrong passwords since the last good one; locked_until is set when they reach the limit.
# user_factories: the factories a user is limited to (none: all of them).
_USERS = """
CREATE TABLE IF NOT EXISTS users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT NOT NULL,
    name_key             TEXT NOT NULL UNIQUE,
    display              TEXT NOT NULL DEFAULT '',
    role                 TEXT NOT NULL CHECK (role IN ('read', 'operator', 'admin')),
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash        TEXT,
    password_changed_at  REAL,
    setup_hash           TEXT UNIQUE,
    setup_expires_at     REAL,
    failures             INTEGER NOT NULL DEFAULT 0,
    locked_until         REAL,
    created_at           REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS user_factories (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    factory_id  INTEGER NOT NULL REFERENCES factories (id),
    PRIMARY KEY (user_id, factory_id)
)
"""


def users(conn: sqlite3.Connection) -> None:
    for statement in statements(_USERS):
        conn.execute(statement)


# token_factories: the factories a person's token is limited to (none: all of them). A
# factory named here is not deleted (hub.storage.crud): the token would lose its limit.
_TOKEN_SCOPES = """
CREATE TABLE IF NOT EXISTS token_factories (
    token_id    INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    factory_id  INTEGER NOT NULL REFERENCES factories (id),
    PRIMARY KEY (token_id, factory_id)
)
"""


def token_scopes(conn: sqlite3.Connection) -> None:
    for statement in statements(_TOKEN_SCOPES):
        conn.execute(statement)


# A console session of a person (hub.storage.access): user_id names them (token_hash then
# holds "user:<id>", so the per-credential session cap counts per person), idle_s is the
# idle timeout it was opened with and last_seen_at its last use; token sessions keep both
# NULL. A person's sessions are deleted when their account changes (hub.storage.users).
_SESSION_COLUMNS = (
    ("user_id", "INTEGER"),
    ("idle_s", "REAL"),
    ("last_seen_at", "REAL"),
)


def user_sessions(conn: sqlite3.Connection) -> None:
    # Safe to run again, like every later step; SQLite's ADD COLUMN has no IF NOT EXISTS.
    present = {row[1] for row in conn.execute("PRAGMA table_info(console_sessions)")}
    for column, definition in _SESSION_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE console_sessions ADD COLUMN {column} {definition}")
    conn.execute("CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions (user_id)")


# Single sign-on (hub.storage.sso): oidc_issuer and oidc_subject name the person at their
# OpenID provider (a subject is unique per issuer only); an account with them has no
# password. oidc_logins holds what a sign-in under way must check when the provider sends
# the browser back: sha256 of the random value in the browser's cookie, the state, the
# nonce and the PKCE verifier; a row is deleted when used and is useless once expired.
_SSO_COLUMNS = (("oidc_issuer", "TEXT"), ("oidc_subject", "TEXT"))
_SSO = """
CREATE UNIQUE INDEX IF NOT EXISTS users_oidc ON users (oidc_issuer, oidc_subject);
CREATE TABLE IF NOT EXISTS oidc_logins (
    key_hash       TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    expires_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_logins_expiry ON oidc_logins (expires_at)
"""


def single_sign_on(conn: sqlite3.Connection) -> None:
    # Safe to run again: columns added only when missing, the rest IF NOT EXISTS.
    present = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    for column, definition in _SSO_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE users ADD COLUMN {column} {definition}")
    for statement in statements(_SSO):
        conn.execute(statement)

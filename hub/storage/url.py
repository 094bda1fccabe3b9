"""The ``database`` setting of hub.toml (deploy/hub.toml): a URL as SQLAlchemy writes it.

``sqlite:////abs/hub.db`` (four slashes: an absolute path), ``sqlite:///rel.db`` (relative to
the working directory), ``postgresql://user:pw@host:5432/db`` or ``postgresql+psycopg://...``
(the driver suffix is SQLAlchemy's; psycopg is the only driver here). A value without a
scheme is an SQLite file path (tests, one-off tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub.storage.model import StorageError

SQLITE = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


@dataclass(frozen=True, slots=True)
class Database:
    engine: Literal["sqlite", "postgresql"]
    # SQLite: the file path; PostgreSQL: a libpq connection URI (postgresql://...).
    target: str

    def describe(self) -> str:
        """The target without a password, for messages and logs."""
        if self.engine == "sqlite":
            return self.target
        return without_password(self.target)


def without_password(url: str) -> str:
    """``scheme://user:***@host...``: a URL's password masked, anything else kept."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}{at}{host}"


def parse_database(value: str) -> Database:
    if value.startswith(SQLITE):
        path = value[len(SQLITE) :]
        if not path:
            raise StorageError("database: sqlite:/// needs a file path (sqlite:////abs/hub.db)")
        return Database("sqlite", path)
    for scheme in POSTGRES_SCHEMES:
        if value.startswith(scheme):
            return Database("postgresql", "postgresql://" + value[len(scheme) :])
    if "://" in value:
        raise StorageError(
            f"database: unsupported URL {value.split('://')[0]}://; use sqlite:////abs/path.db "
            "or postgresql://user:password@host:5432/dbname"
        )
    return Database("sqlite", value)

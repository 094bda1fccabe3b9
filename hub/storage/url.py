"""The ``database`` setting of hub.toml (deploy/hub.toml): a URL as SQLAlchemy writes it.

``sqlite:////abs/hub.db`` (four slashes: an absolute path), ``sqlite:///rel.db`` (relative to
the working directory), ``postgresql://user:pw@host:5432/db`` or ``postgresql+psycopg://...``
(the driver suffix is SQLAlchemy's; psycopg is the only driver here). A value without a
scheme is an SQLite file path (tests, one-off tools).

A PostgreSQL URL may name several hosts, as libpq takes them:
``postgresql://edge:pw@pg-a:5432,pg-b:5432/edge?target_session_attrs=read-write`` tries each
in turn and keeps the first that is a writable primary (a Patroni cluster without a proxy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

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

    def hosts(self) -> list[str]:
        """``host:port`` of every server the URL names, in the order they are tried."""
        if self.engine == "sqlite":
            return []
        return hosts_of(self.target)


def without_password(url: str) -> str:
    """``scheme://user:***@host...``: a URL's password masked (also a ``password=`` query
    parameter), anything else kept."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    host = _QUERY_PASSWORD.sub(r"\1***", host)
    return f"{scheme}://{creds}{at}{host}"


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*")


def hosts_of(conninfo: str) -> list[str]:
    """``host:port`` per host of a libpq URL (a port list of one applies to every host;
    none: libpq's default, 5432)."""
    params = conninfo_to_dict(conninfo)
    names = str(params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(names)
    return [
        f"{f'[{name}]' if ':' in name else name}:{port or 5432}"
        for name, port in zip(names, ports, strict=False)
    ]


def parse_database(value: str) -> Database:
    if value.startswith(SQLITE):
        path = value[len(SQLITE) :]
        if not path:
            raise StorageError("database: sqlite:/// needs a file path (sqlite:////abs/hub.db)")
        return Database("sqlite", path)
    for scheme in POSTGRES_SCHEMES:
        if value.startswith(scheme):
            target = "postgresql://" + value[len(scheme) :]
            _check_conninfo(target)
            return Database("postgresql", target)
    if "://" in value:
        raise StorageError(
            f"database: unsupported URL {value.split('://')[0]}://; use sqlite:////abs/path.db "
            "or postgresql://user:password@host:5432/dbname"
        )
    return Database("sqlite", value)


def _check_conninfo(target: str) -> None:
    # libpq's own parser: a bad parameter or a host and port list of different lengths is
    # named when the config is read, not at the first connection.
    try:
        params = conninfo_to_dict(target)
    except ProgrammingError as exc:
        raise StorageError(f"database: {str(exc).strip()} in {without_password(target)}") from None
    hosts = str(params.get("host") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise StorageError(
            f"database: {len(hosts)} hosts but {len(ports)} ports in "
            f"{without_password(target)}; give one port for all or one per host"
        )

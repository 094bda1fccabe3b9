"""The ``database`` setting: libpq multi-host URLs are taken, masked and checked."""

from __future__ import annotations

import pytest

from hub.storage.model import StorageError
from hub.storage.url import parse_database, without_password

CLUSTER = "postgresql://edge:SECRET@pg-a:5432,pg-b:5433/edge?target_session_attrs=read-write"


def test_a_multi_host_url_is_kept_whole_for_libpq() -> None:
    database = parse_database(CLUSTER)
    assert database.engine == "postgresql"
    assert database.target == CLUSTER
    assert database.hosts() == ["pg-a:5432", "pg-b:5433"]


def test_the_driver_suffix_and_short_scheme_name_the_same_cluster() -> None:
    for scheme in ("postgresql+psycopg://", "postgres://"):
        value = CLUSTER.replace("postgresql://", scheme)
        assert parse_database(value).target == CLUSTER


def test_one_port_or_none_applies_to_every_host() -> None:
    assert parse_database("postgresql://u@pg-a,pg-b/e?port=6432").hosts() == [
        "pg-a:6432",
        "pg-b:6432",
    ]
    # In the URI form a host without its own port gets the default.
    assert parse_database("postgresql://u@pg-a,pg-b:6432/e").hosts() == [
        "pg-a:5432",
        "pg-b:6432",
    ]
    assert parse_database("postgresql://u@pg-a,[::1]/e").hosts() == ["pg-a:5432", "[::1]:5432"]


def test_the_password_is_masked_wherever_it_is_written() -> None:
    shown = parse_database(CLUSTER).describe()
    assert "SECRET" not in shown
    assert shown == (
        "postgresql://edge:***@pg-a:5432,pg-b:5433/edge?target_session_attrs=read-write"
    )
    query = without_password("postgresql://pg-a,pg-b/edge?sslmode=require&password=SECRET")
    assert query == "postgresql://pg-a,pg-b/edge?sslmode=require&password=***"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("postgresql://u:SECRET@a:1,b:2,c:3,d:4/e?port=1,2", "4 hosts but 2 ports"),
        ("postgresql://u:SECRET@a,b/e?target_session_attr=read-write", "target_session_attr"),
    ],
)
def test_a_malformed_cluster_url_is_refused_when_read(value: str, named: str) -> None:
    with pytest.raises(StorageError, match=named) as refused:
        parse_database(value)
    assert "SECRET" not in str(refused.value)

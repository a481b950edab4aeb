"""Pure helpers of the PostgreSQL pools."""

from __future__ import annotations

from collab.store.pg_pools import parse_lsn, split_hosts


def test_split_hosts_keeps_credentials_database_and_parameters() -> None:
    dsn = "postgresql://app:s3cr%40t@db1:5432,db2:5433/collab?target_session_attrs=read-write"
    assert split_hosts(dsn) == [
        "postgresql://app:s3cr%40t@db1:5432/collab?target_session_attrs=read-write",
        "postgresql://app:s3cr%40t@db2:5433/collab?target_session_attrs=read-write",
    ]
    assert split_hosts("postgresql://db/x") == ["postgresql://db/x"]
    assert split_hosts("postgres://u@h1,h2") == ["postgres://u@h1", "postgres://u@h2"]


def test_parse_lsn() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848

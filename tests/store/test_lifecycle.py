"""Store contract: migrations, health, pool stats and ``open_store``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collab.settings import Settings
from collab.store import PostgresStore, SqliteStore, Store, open_store
from collab.store.migrator import migration_files, split_statements
from tests.store.helpers import make_user


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []  # the fixture already migrated
    await make_user(store, "still-here")
    assert await store.migrate() == []
    assert await store.get_user_by_name("still-here") is not None


async def test_ping_and_pool_stats(store: Store) -> None:
    await store.ping()
    stats = store.pool_stats()
    assert set(stats) == {"size", "idle", "max"}
    assert 1 <= stats["size"] <= stats["max"] and 0 <= stats["idle"] <= stats["size"]


async def test_open_store_sqlite_creates_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "collab.db"
    store = await open_store(Settings(sqlite_path=str(path)))
    try:
        assert isinstance(store, SqliteStore)
        assert path.parent.is_dir()
        # Connected but not migrated: the caller decides when to migrate.
        await store.ping()
        assert await store.migrate() == [name for name, _ in migration_files("sqlite")]
    finally:
        await store.close()


async def test_open_store_postgres(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, jwt_secret="x" * 32, db_pool_min=2, db_pool_max=3)
    store = await open_store(settings)
    try:
        assert isinstance(store, PostgresStore)
        assert store.pool_stats() == {"size": 2, "idle": 2, "max": 3}
        assert store.timeline >= 1 and store.timeline_changes == 0
        assert await store.migrate() == [name for name, _ in migration_files("postgres")]
    finally:
        await store.close()


def test_both_backends_have_the_same_migrations() -> None:
    names = [name for name, _ in migration_files("postgres")]
    assert names and names == [name for name, _ in migration_files("sqlite")]


def test_split_statements_respects_quotes_and_comments() -> None:
    script = (
        "-- a; comment\nCREATE TABLE t (x TEXT DEFAULT ';');\n\nINSERT INTO t VALUES ('a;b');\n"
    )
    assert split_statements(script) == [
        "-- a; comment\nCREATE TABLE t (x TEXT DEFAULT ';');",
        "INSERT INTO t VALUES ('a;b');",
    ]


async def test_concurrent_sqlite_migrate_from_two_stores(tmp_path: Path) -> None:
    """Two processes' stores on one file: BEGIN IMMEDIATE serialises them."""
    path = str(tmp_path / "shared.db")
    first, second = SqliteStore(path), SqliteStore(path)
    await first.open()
    await second.open()
    try:
        results = await asyncio.gather(first.migrate(), second.migrate())
        expected = [name for name, _ in migration_files("sqlite")]
        # Each migration is applied exactly once, by one of the two (which one
        # depends on who takes the write lock first, file by file).
        applied = results[0] + results[1]
        assert sorted(applied) == expected and len(set(applied)) == len(applied)
    finally:
        await first.close()
        await second.close()

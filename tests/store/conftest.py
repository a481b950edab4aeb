"""Fixtures for the store contract suite: every test taking ``store`` runs once
on SQLite (a temp file) and once on PostgreSQL (a fresh database on the real
test server from ``tests/support/services.py``, dropped afterwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab.store import PostgresStore, SqliteStore, Store
from collab.store.memory import MemoryStore
from tests.support.services import create_database, drop_database


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A connected, migrated, empty store of each kind (the in-memory twin is
    the simulation's store: the same contract holds for it)."""
    if request.param == "memory":
        opened: Store = MemoryStore()
        url = ""
    elif request.param == "sqlite":
        opened = await SqliteStore(str(tmp_path / "data" / "collab.db")).open()
        url = ""
    else:
        url = await create_database()
        opened = await PostgresStore(url, pool_min=1, pool_max=8).open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()
        if url:
            await drop_database(url)

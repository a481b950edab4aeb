"""Every test taking ``cluster`` runs on SQLite (the embedded store), on a
fresh PostgreSQL database and on the in-memory store twin, with the in-memory
lease, presence, registry and bus twins shared by the replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab.store import PostgresStore, SqliteStore, Store
from collab.store.memory import MemoryStore
from tests.core.cluster import Cluster
from tests.support.services import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
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


@pytest.fixture
async def cluster(store: Store) -> AsyncIterator[Cluster]:
    started = await Cluster(store).start()
    try:
        yield started
    finally:
        await started.close()

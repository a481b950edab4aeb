"""Every test taking ``cluster`` runs on SQLite (the embedded store) and on a
fresh PostgreSQL database, with the in-memory lease, presence, registry and
bus twins shared by the replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collab.store import PostgresStore, SqliteStore, Store
from tests.core.cluster import Cluster
from tests.support.services import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened: Store = await SqliteStore(str(tmp_path / "data" / "collab.db")).open()
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

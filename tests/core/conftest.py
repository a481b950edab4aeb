"""Every test taking ``cluster`` runs on SQLite (the embedded store), on a
fresh PostgreSQL database and on the in-memory store twin, with the in-memory
lease, presence, registry and bus twins shared by the replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from collab.store import Store
from tests.core.cluster import Cluster

# The contract suite's fixture, so both suites run on the same three stores.
from tests.store.conftest import store  # noqa: F401


@pytest.fixture
async def cluster(store: Store) -> AsyncIterator[Cluster]:  # noqa: F811 - the fixture above
    started = await Cluster(store).start()
    try:
        yield started
    finally:
        await started.close()

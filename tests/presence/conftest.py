"""Every test taking ``presence`` runs against the real Redis (unique prefix,
deleted after), a real Redis Cluster (``tests/redis_modes/topology.py``) and
the memory twin on a fake clock; ``presence.advance(ms)``
sleeps or steps the clock accordingly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from collab.presence.base import PresenceStore
from collab.presence.memory import MemoryPresenceStore
from collab.presence.redis import RedisPresenceStore
from tests.leases.helpers import FakeClock, delete_prefix, unique_prefix
from tests.redis_modes.topology import CLUSTER_OPTIONS, delete_cluster_prefix, redis_cluster_url
from tests.support.services import redis_url


@dataclass
class PresenceEnv:
    kind: str
    store: PresenceStore
    advance: Callable[[float], Awaitable[None]]
    prefix: str = ""


@pytest.fixture(params=["redis", "cluster", "memory"])
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceEnv]:
    if request.param == "memory":
        clock = FakeClock()

        async def step(ms: float) -> None:
            clock.advance(ms)

        yield PresenceEnv("memory", MemoryPresenceStore(clock=clock), step)
        return

    async def sleep(ms: float) -> None:
        await asyncio.sleep(ms / 1000.0)

    cluster = request.param == "cluster"
    url, prefix = (redis_cluster_url() if cluster else redis_url()), unique_prefix()
    store = RedisPresenceStore(url, prefix=prefix, options=CLUSTER_OPTIONS if cluster else None)
    await store.start()
    try:
        yield PresenceEnv(request.param, store, sleep, prefix)
    finally:
        await store.close()
        await (delete_cluster_prefix if cluster else delete_prefix)(url, prefix)

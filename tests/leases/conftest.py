"""Every test taking ``leases`` runs once against the real Redis from
``tests/support/services.py`` (a unique key prefix per test, deleted after)
once against a real Redis Cluster (three masters with a replica each,
``tests/redis_modes/topology.py``; every script must keep to one slot there)
and once against the in-memory twin driven by a fake clock.

``leases.advance(ms)`` moves time: a real sleep for Redis (its keys expire on
Redis's own clock), a clock step for the memory twin. The Redis runs use short
TTLs so the whole suite stays within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from collab.leases.base import LeaseStore
from collab.leases.memory import MemoryLeaseStore
from collab.leases.redis import RedisLeaseStore
from tests.leases.helpers import FakeClock, delete_prefix, unique_prefix
from tests.redis_modes.topology import CLUSTER_OPTIONS, delete_cluster_prefix, redis_cluster_url
from tests.support.services import redis_url

TTL_MS = 400
LOCK_DELAY_MS = 600


@dataclass
class LeaseEnv:
    kind: str
    store: LeaseStore
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["redis", "cluster", "memory"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[LeaseEnv]:
    if request.param == "memory":
        clock = FakeClock()

        async def step(ms: float) -> None:
            clock.advance(ms)

        store: LeaseStore = MemoryLeaseStore(
            ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS, clock=clock
        )
        await store.start()
        yield LeaseEnv("memory", store, step)
        await store.close()
        return

    cluster = request.param == "cluster"
    url = redis_cluster_url() if cluster else redis_url()
    prefix = unique_prefix()

    async def sleep(ms: float) -> None:
        await asyncio.sleep(ms / 1000.0)

    store = RedisLeaseStore(
        url, prefix=prefix, ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS,
        options=CLUSTER_OPTIONS if cluster else None,
    )  # fmt: skip
    await store.start()
    try:
        yield LeaseEnv(request.param, store, sleep)
    finally:
        await store.close()
        await (delete_cluster_prefix if cluster else delete_prefix)(url, prefix)

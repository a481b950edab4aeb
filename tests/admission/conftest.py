"""Every test taking ``admission`` runs against the real Redis (unique prefix,
deleted after), a real Redis Cluster (``tests/redis_modes/topology.py``) and
the in-process twin on a fake clock; ``admission.advance(ms)`` sleeps or
steps the clock accordingly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from collab.admission.base import SocketAdmission
from collab.admission.memory import MemorySocketAdmission
from collab.admission.redis import RedisSocketAdmission
from tests.leases.helpers import FakeClock, delete_prefix, unique_prefix
from tests.redis_modes.topology import CLUSTER_OPTIONS, delete_cluster_prefix, redis_cluster_url
from tests.support.services import redis_url


@dataclass
class AdmissionEnv:
    kind: str
    store: SocketAdmission
    advance: Callable[[float], Awaitable[None]]
    url: str = ""
    prefix: str = ""


@pytest.fixture(params=["redis", "cluster", "memory"])
async def admission(request: pytest.FixtureRequest) -> AsyncIterator[AdmissionEnv]:
    if request.param == "memory":
        clock = FakeClock()

        async def step(ms: float) -> None:
            clock.advance(ms)

        yield AdmissionEnv("memory", MemorySocketAdmission(clock=clock), step)
        return

    async def sleep(ms: float) -> None:
        await asyncio.sleep(ms / 1000.0)

    cluster = request.param == "cluster"
    url, prefix = (redis_cluster_url() if cluster else redis_url()), unique_prefix()
    store = RedisSocketAdmission(url, prefix=prefix, options=CLUSTER_OPTIONS if cluster else None)
    await store.start()
    try:
        yield AdmissionEnv(request.param, store, sleep, url, prefix)
    finally:
        await store.close()
        await (delete_cluster_prefix if cluster else delete_prefix)(url, prefix)

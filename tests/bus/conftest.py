"""``bus_pair`` yields two started buses of one backend -- two "replicas" --
with their recorders: Redis (the shared test server, a unique channel
prefix), a Redis Cluster (sharded pub/sub, ``tests/redis_modes/topology.py``)
and the memory twin (one ``MemoryBroker``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from collab.bus.base import Bus
from collab.bus.memory import MemoryBroker, MemoryBus
from collab.bus.redis import RedisBus
from collab.events import note_topic
from tests.bus.helpers import FAST, Recorder
from tests.leases.helpers import unique_prefix
from tests.redis_modes.topology import CLUSTER_OPTIONS, redis_cluster_url
from tests.support.services import redis_url


@dataclass
class BusPair:
    kind: str
    a: Bus
    b: Bus
    rec_a: Recorder
    rec_b: Recorder


@pytest.fixture(params=["redis", "cluster", "memory"])
async def bus_pair(request: pytest.FixtureRequest) -> AsyncIterator[BusPair]:
    if request.param == "redis":
        prefix = unique_prefix()
        a: Bus = RedisBus(redis_url(), prefix=prefix, replica_id="a", timing=FAST)
        b: Bus = RedisBus(redis_url(), prefix=prefix, replica_id="b", timing=FAST)
    elif request.param == "cluster":
        prefix, url = unique_prefix(), redis_cluster_url()
        a = RedisBus(url, prefix=prefix, replica_id="a", timing=FAST, options=CLUSTER_OPTIONS)
        b = RedisBus(url, prefix=prefix, replica_id="b", timing=FAST, options=CLUSTER_OPTIONS)
    else:
        broker = MemoryBroker()
        a, b = MemoryBus(broker), MemoryBus(broker)
    rec_a, rec_b = Recorder(), Recorder()
    await a.start(rec_a.handle, rec_a.resync)
    await b.start(rec_b.handle, rec_b.resync)
    for bus in (a, b):  # the suites' events are about note "n" (or no note: everyone's)
        await bus.follow([note_topic("n")])
    try:
        yield BusPair(str(request.param), a, b, rec_a, rec_b)
    finally:
        await a.close()
        await b.close()

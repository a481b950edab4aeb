"""The session registry contract, on Redis, on a Redis Cluster and on the
in-process twin: claim
returns what it replaced, touch/forget compare the socket, notes follow the
session, and sessions expire with their TTL (rule 9: resume on any replica)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from collab.registry.base import SessionRecord, SessionRegistry
from collab.registry.memory import MemorySessionRegistry
from collab.registry.redis import RedisSessionRegistry
from collab.types import User
from tests.redis_modes.topology import CLUSTER_OPTIONS, delete_cluster_prefix, redis_cluster_url
from tests.support.services import redis_url

ALICE = User("u-alice", "alice", "user")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "cluster"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[SessionRegistry]:
    prefix = "reg" + uuid.uuid4().hex[:8]
    reg: SessionRegistry
    if request.param == "memory":
        reg = MemorySessionRegistry(clock=FakeClock())
    elif request.param == "cluster":
        reg = RedisSessionRegistry(redis_cluster_url(), prefix, CLUSTER_OPTIONS)
    else:
        reg = RedisSessionRegistry(redis_url(), prefix)
    await reg.start()
    yield reg
    await reg.close()
    if request.param == "cluster":
        await delete_cluster_prefix(redis_cluster_url(), prefix)
    if request.param == "redis":
        client = aioredis.from_url(redis_url())
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def record(session: str, socket: str, replica: str = "r1") -> SessionRecord:
    return SessionRecord(session, ALICE, replica, socket, "2026-01-01T00:00:00Z")


async def advance(reg: SessionRegistry, ms: int) -> None:
    if isinstance(reg, MemorySessionRegistry):
        reg._clock.now += ms  # type: ignore[attr-defined]
    else:
        await asyncio.sleep(ms / 1000)


async def test_claim_returns_the_replaced_record(registry: SessionRegistry) -> None:
    assert await registry.claim(record("s1", "k1"), 5000) is None
    previous = await registry.claim(record("s1", "k2", "r2"), 5000)
    assert previous is not None and previous.socket == "k1" and previous.replica == "r1"
    current = await registry.get("s1")
    assert current is not None and current.socket == "k2" and current.user == ALICE


async def test_touch_and_forget_compare_the_socket(registry: SessionRegistry) -> None:
    await registry.claim(record("s1", "k1"), 5000)
    await registry.claim(record("s1", "k2"), 5000)
    assert not await registry.touch("s1", "k1", 5000), "a superseded socket cannot renew"
    assert await registry.touch("s1", "k2", 5000)
    await registry.forget("s1", "k1")
    assert await registry.get("s1") is not None, "a superseded socket cannot forget"
    await registry.forget("s1", "k2")
    assert await registry.get("s1") is None


async def test_touch_many_answers_as_touch_does_one_by_one(registry: SessionRegistry) -> None:
    await registry.claim(record("s1", "k1"), 300)
    await registry.claim(record("s2", "k2"), 300)
    answers = await registry.touch_many(
        [("s1", "k1", 5000), ("s2", "old", 5000), ("s3", "k3", 5000)]
    )
    assert answers == [True, False, False]  # s2 is served by another socket; s3 unknown
    await advance(registry, 450)
    assert await registry.get("s1") is not None, "renewed with its own TTL"
    assert await registry.get("s2") is None, "a refused touch renews nothing"
    assert await registry.get("s3") is None
    assert await registry.touch_many([]) == []


async def test_notes_follow_the_session(registry: SessionRegistry) -> None:
    await registry.claim(record("s1", "k1"), 5000)
    await registry.add_note("s1", "n1")
    await registry.add_note("s1", "n2")
    await registry.remove_note("s1", "n1")
    assert await registry.notes("s1") == {"n2"}
    await registry.claim(record("s1", "k2"), 5000)
    assert await registry.notes("s1") == {"n2"}, "a resumed session keeps its notes"


async def test_sessions_expire_and_are_listed_by_user(registry: SessionRegistry) -> None:
    await registry.claim(record("s1", "k1"), 300)
    await registry.claim(record("s2", "k2"), 5000)
    assert {r.session for r in await registry.sessions_of(ALICE.id)} == {"s1", "s2"}
    await advance(registry, 450)
    assert await registry.get("s1") is None
    assert [r.session for r in await registry.sessions()] == ["s2"]
    assert await registry.sessions_of("someone-else") == []

"""Presence contract on Redis and the memory twin, plus the Redis key layout."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from collab.errors import Unavailable
from collab.presence import make_presence_store
from collab.presence.memory import MemoryPresenceStore
from collab.presence.redis import RedisPresenceStore
from collab.settings import Settings
from tests.leases.helpers import ALICE, BOB, CAROL, delete_prefix, unique_prefix
from tests.presence.conftest import PresenceEnv
from tests.support.services import RedisServer, free_port, redis_url

TTL_MS = 300


async def test_touch_reports_new_viewers_only(presence: PresenceEnv) -> None:
    s = presence.store
    assert await s.touch("n", "s2", BOB, TTL_MS)
    assert await s.touch("n", "s1", ALICE, TTL_MS)
    assert not await s.touch("n", "s2", BOB, TTL_MS)
    assert await s.viewers("n") == [("s1", ALICE), ("s2", BOB)]
    assert await s.viewers("other") == []


async def test_remove(presence: PresenceEnv) -> None:
    s = presence.store
    await s.touch("n", "s1", ALICE, TTL_MS)
    assert await s.remove("n", "s1")
    assert not await s.remove("n", "s1")
    assert await s.viewers("n") == []


async def test_viewers_expire_unless_touched(presence: PresenceEnv) -> None:
    s = presence.store
    await s.touch("n", "s1", ALICE, TTL_MS)
    await s.touch("n", "s3", CAROL, TTL_MS)
    for _ in range(3):  # s1 keeps heartbeating past one TTL; s3 does not
        await presence.advance(TTL_MS * 0.45)
        assert not await s.touch("n", "s1", ALICE, TTL_MS)
    assert await s.viewers("n") == [("s1", ALICE)]
    assert not await s.remove("n", "s3")  # an expired viewer is not present
    assert await s.touch("n", "s3", CAROL, TTL_MS)  # and coming back is a change


async def test_ttl_is_per_touch(presence: PresenceEnv) -> None:
    s = presence.store
    await s.touch("n", "short", ALICE, 100)
    await s.touch("n", "long", BOB, 2000)
    await presence.advance(200)
    assert await s.viewers("n") == [("long", BOB)]


async def test_touch_many_answers_as_touch_does_one_by_one(presence: PresenceEnv) -> None:
    s = presence.store
    await s.touch("n", "s1", ALICE, TTL_MS)
    answers = await s.touch_many(
        [("n", "s1", ALICE, TTL_MS), ("n", "s2", BOB, 100), ("m", "s1", ALICE, TTL_MS)]
    )
    assert answers == [False, True, True]  # s1 was live on n; s2 and s1-on-m are new
    assert await s.viewers("n") == [("s1", ALICE), ("s2", BOB)]
    assert await s.viewers("m") == [("s1", ALICE)]
    await presence.advance(200)  # each touch keeps its own TTL
    assert await s.viewers("n") == [("s1", ALICE)]
    assert await s.touch_many([]) == []


async def test_touch_many_survives_a_redis_that_forgot_its_scripts() -> None:
    """After a restart or failover Redis has no scripts loaded: the batch
    loads it again instead of failing every touch in it. (A Redis of its
    own: flushing the shared one's scripts would disturb other tests.)"""
    server = RedisServer().start()
    store = RedisPresenceStore(server.url, prefix="p")
    await store.start()
    client = aioredis.from_url(server.url)
    try:
        await client.script_flush()
        assert await store.touch_many([("n", "s1", ALICE, TTL_MS)]) == [True]
        assert await store.viewers("n") == [("s1", ALICE)]
    finally:
        await client.aclose()
        await store.close()
        server.stop()


async def test_redis_keys_expire_with_their_last_viewer() -> None:
    url = redis_url()
    store = RedisPresenceStore(url, prefix=unique_prefix())
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await store.touch("n", "s1", ALICE, TTL_MS)
        for key in ("presence", "pusers"):
            ttl = await raw.pttl(f"{store.prefix}:{{n}}:{key}")
            assert 0 < ttl <= TTL_MS
    finally:
        await store.close()
        await raw.aclose()
        await delete_prefix(url, store.prefix)


async def test_unreachable_redis_is_unavailable() -> None:
    store = RedisPresenceStore(f"redis://127.0.0.1:{free_port()}/0", prefix="p")
    try:
        with pytest.raises(Unavailable):
            await store.touch("n", "s1", ALICE, TTL_MS)
    finally:
        await store.close()


async def test_make_presence_store_picks_the_backend() -> None:
    assert isinstance(make_presence_store(Settings()), MemoryPresenceStore)
    remote = make_presence_store(Settings(redis_url=redis_url(), redis_prefix="pp"))
    assert isinstance(remote, RedisPresenceStore) and remote.prefix == "pp"
    await remote.close()

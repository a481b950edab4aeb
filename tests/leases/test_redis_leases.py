"""What only the Redis lease store has: key layout and hash tags (rule 11),
the stored lease value, an early key expiry, Redis data loss (rule 8) and
outages. Uses the shared test Redis with a unique prefix, or a private
``RedisServer`` where the test flushes or restarts it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from collab.errors import Unavailable
from collab.leases import make_lease_store
from collab.leases.base import AcquireResult, QueueView
from collab.leases.keys import LeaseKeys
from collab.leases.memory import MemoryLeaseStore
from collab.leases.redis import RedisLeaseStore
from collab.settings import Settings
from tests.leases.helpers import ALICE, BOB, delete_prefix, unique_prefix
from tests.support.services import RedisServer, free_port, redis_url

TTL_MS = 400
LOCK_DELAY_MS = 600


@pytest.fixture
async def shared() -> AsyncIterator[tuple[RedisLeaseStore, aioredis.Redis]]:
    """A started store on the shared test Redis plus a raw client."""
    url, prefix = redis_url(), unique_prefix()
    store = RedisLeaseStore(url, prefix=prefix, ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS)
    await store.start()
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        yield store, raw
    finally:
        await store.close()
        await raw.aclose()
        await delete_prefix(url, prefix)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_all_keys_of_a_note_share_one_slot() -> None:
    for note in ("n1", "0b7c1f0e-1c1e-4c1e-9b1e-1c1e1c1e1c1e", "x" * 40):
        keys = LeaseKeys.of("collab", note).all_for("some-session")
        base = f"collab:{{{note}}}:"
        presence = (base + "presence", base + "pusers")
        slots = {key_slot(k.encode()) for k in (*keys, *presence)}
        assert slots == {key_slot(note.encode())}


def test_ids_that_would_break_the_key_layout_are_refused() -> None:
    with pytest.raises(ValueError):
        LeaseKeys.of("collab", "a}b")
    with pytest.raises(ValueError):
        RedisLeaseStore("redis://127.0.0.1:1/0", prefix="p", ttl_ms=0, lock_delay_ms=0)


async def test_session_ids_with_colons_are_refused(shared: tuple[RedisLeaseStore, object]) -> None:
    store, _ = shared
    with pytest.raises(ValueError):
        await store.try_acquire("n", "a:b", ALICE, wait=False)


async def test_lease_value_and_ttl(shared: tuple[RedisLeaseStore, aioredis.Redis]) -> None:
    store, raw = shared
    await store.try_acquire("n", "sa", ALICE, wait=True)
    await store.try_acquire("n", "sb", BOB, wait=True)
    k = LeaseKeys.of(store.prefix, "n")
    assert await raw.get(k.lease) == "u-alice:sa:1"
    assert 0 < await raw.pttl(k.lease) <= TTL_MS
    assert await raw.get(k.fence) == "1"
    assert 0 < await raw.pttl(k.waiter("sb")) <= TTL_MS
    assert await raw.zrange(k.queue, 0, -1) == ["sb"]


async def test_early_key_expiry_still_leaves_the_lock_delay(
    shared: tuple[RedisLeaseStore, aioredis.Redis],
) -> None:
    """A Redis clock jump (simulated by expiring the key at once) ends the
    lease early, but others still wait for the deadline the holder was given
    plus the lock-delay: the holder may still believe it holds the token."""
    store, raw = shared
    await store.try_acquire("n", "sa", ALICE, wait=False)
    await raw.pexpire(LeaseKeys.of(store.prefix, "n").lease, 1)
    await asyncio.sleep(0.01)
    assert isinstance(await store.view("n"), QueueView)
    assert await store.try_acquire("n", "sb", BOB, wait=False) == AcquireResult("locked")
    assert await store.grantable_in_ms("n", "sb") > LOCK_DELAY_MS + TTL_MS // 2


async def test_check_epoch_after_flushall_and_restart(private_redis: RedisServer) -> None:
    url = private_redis.url
    one = RedisLeaseStore(url, prefix="p", ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS)
    two = RedisLeaseStore(url, prefix="p", ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS)
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await one.start()
        await two.start()  # a second replica starting is not a data loss
        assert not await one.check_epoch()
        assert not await two.check_epoch()

        await raw.flushall()
        assert await one.check_epoch()  # epoch key vanished
        assert not await one.check_epoch()  # reported once
        assert await two.check_epoch()  # it sees the epoch one re-created
        assert not await two.check_epoch()

        await raw.aclose()
        private_redis.restart()  # no persistence: data and run_id both change
        assert await one.check_epoch()
        assert not await one.check_epoch()
        assert await two.check_epoch()
        assert not await two.check_epoch()
    finally:
        await one.close()
        await two.close()
        await raw.aclose()


async def test_check_epoch_notices_a_new_run_id_alone(private_redis: RedisServer) -> None:
    """Even if something restored the epoch key, a new server run is a loss."""
    url = private_redis.url
    store = RedisLeaseStore(url, prefix="p", ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS)
    try:
        await store.start()
        raw = aioredis.Redis.from_url(url, decode_responses=True)
        epoch = await raw.get("p:epoch")
        await raw.aclose()
        private_redis.restart()
        raw = aioredis.Redis.from_url(url, decode_responses=True)
        await raw.set("p:epoch", str(epoch))
        await raw.aclose()
        assert await store.check_epoch()
        assert not await store.check_epoch()
    finally:
        await store.close()


async def test_works_again_after_a_redis_restart(private_redis: RedisServer) -> None:
    """Pooled connections and the script cache die with the server; the store
    reconnects and re-sends its scripts on its own."""
    store = RedisLeaseStore(
        private_redis.url, prefix="p", ttl_ms=TTL_MS, lock_delay_ms=LOCK_DELAY_MS
    )
    try:
        await store.start()
        assert (await store.try_acquire("n", "sa", ALICE, wait=False)).kind == "granted"
        private_redis.restart()
        # The counter was lost with the data; PostgreSQL's fence would be
        # raised into it by the caller (rule 1).
        assert await store.try_acquire("n", "sb", BOB, wait=False) == AcquireResult(
            "granted", fence=1
        )
    finally:
        await store.close()


async def test_unreachable_redis_is_unavailable_without_leaking_details() -> None:
    port = free_port()
    store = RedisLeaseStore(
        f"redis://:hunter2secret@127.0.0.1:{port}/0",
        prefix="p",
        ttl_ms=TTL_MS,
        lock_delay_ms=LOCK_DELAY_MS,
    )
    try:
        for attempt in (store.start(), store.ping(), store.try_acquire("n", "s", ALICE, True)):
            with pytest.raises(Unavailable) as caught:
                await attempt
            text = caught.value.message
            assert str(port) not in text and "hunter2" not in text and "127.0.0.1" not in text
            assert caught.value.status == 503
    finally:
        await store.close()


async def test_make_lease_store_picks_the_backend() -> None:
    memory = make_lease_store(Settings(lease_ttl_ms=12000, lock_delay_ms=1500))
    assert isinstance(memory, MemoryLeaseStore)
    assert (memory.ttl_ms, memory.lock_delay_ms) == (12000, 1500)
    remote = make_lease_store(
        Settings(redis_url=redis_url(), redis_prefix="px", lease_ttl_ms=9000, lock_delay_ms=0)
    )
    assert isinstance(remote, RedisLeaseStore)
    assert (remote.prefix, remote.ttl_ms, remote.lock_delay_ms) == ("px", 9000, 0)
    await remote.close()

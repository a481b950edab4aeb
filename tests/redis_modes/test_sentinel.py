"""Redis behind Sentinel (a master, a replica, three sentinels on loopback):
the lease store, the bus and the session registry follow the master through a
failover, and every failover reads as Redis having lost its data (rule 8),
including one to a replica that missed the newest writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from collab.bus.redis import RedisBus
from collab.bus.timing import BusTiming
from collab.events import Event, note_topic
from collab.leases.redis import RedisLeaseStore
from collab.metrics import Metrics
from collab.redis_client import RedisClientOptions
from collab.registry.base import SessionRecord
from collab.registry.redis import RedisSessionRegistry
from collab.types import User
from tests.redis_modes.topology import SENTINEL_MASTER, SentinelSetup

ALICE = User("u-alice", "Alice", "user")
BOB = User("u-bob", "Bob", "user")
OPTIONS = RedisClientOptions(mode="sentinel", sentinel_master=SENTINEL_MASTER, socket_timeout_s=1)
FAST = BusTiming(ping_interval_s=0.2, ping_timeout_s=0.5, reconnect_min_s=0.05,
                 reconnect_max_s=0.5)  # fmt: skip


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(replica_via_proxy=True).start()
    yield setup
    setup.stop()


@pytest.fixture
async def leases(sentinels: SentinelSetup) -> AsyncIterator[RedisLeaseStore]:
    store = RedisLeaseStore(
        sentinels.url, prefix="st", ttl_ms=60_000, lock_delay_ms=500, options=OPTIONS
    )
    await store.start()
    yield store
    await store.close()


async def _until(what: str, check, limit_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Until ``await check()`` is true; errors count as not yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        try:
            if await check():
                return
        except Exception:
            if loop.time() > deadline:
                raise
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_replica_that_missed_the_newest_writes_is_detected(
    sentinels: SentinelSetup, leases: RedisLeaseStore
) -> None:
    """The replica's link is blackholed, a grant lands on the master only,
    the master is killed: the promoted replica has neither the lease nor the
    counter's increment. The store reports the loss; the counter behind the
    database is what rule 1 then repairs at the next grant."""
    # First in the module: only the first master's replica links through
    # the proxy (the sentinels re-point replicas at the real address).
    assert sentinels.proxy is not None and sentinels.master_port() == sentinels.master.port
    first = await leases.try_acquire("n-lag", "sa", ALICE, wait=False)
    master = sentinels.master.client()
    assert master.execute_command("WAIT", 1, 5000) == 1  # the replica has it
    sentinels.proxy.blackhole()
    try:
        second_note = await leases.try_acquire("n-lag2", "sb", BOB, wait=False)
        assert second_note.kind == "granted"
        await asyncio.to_thread(sentinels.failover, kill=True)
    finally:
        sentinels.proxy.heal()
    await _until("the store works on the new master", lambda: _works(leases))
    assert await leases.check_epoch()
    assert await leases.fence_counter("n-lag") == first.fence  # replicated before the cut
    assert await leases.fence_counter("n-lag2") == 0  # the write the replica missed
    await asyncio.to_thread(sentinels.restart_lost_node)


async def test_the_clients_find_the_master_through_the_sentinels(
    sentinels: SentinelSetup, leases: RedisLeaseStore
) -> None:
    granted = await leases.try_acquire("n-find", "sa", ALICE, wait=False)
    assert granted.kind == "granted"
    master = sentinels.node(sentinels.master_port()).client()
    assert master.get("st:{n-find}:fence") == "1"
    assert not await leases.check_epoch()


async def test_a_failover_voids_the_leases_and_the_store_follows_the_master(
    sentinels: SentinelSetup, leases: RedisLeaseStore
) -> None:
    held = await leases.try_acquire("n-fo", "sa", ALICE, wait=False)
    await asyncio.to_thread(sentinels.failover)
    # Commands go to the new master (a demoted one refuses writes: READONLY,
    # and redis-py then asks the sentinels again).
    await _until(
        "the store works on the new master", lambda: leases.renew("n-fo", "sa", held.fence)
    )
    # Data replicated before the failover is there, yet the failover itself is
    # reported once: a promoted replica may have missed the newest writes.
    assert await leases.check_epoch()
    assert not await leases.check_epoch()


async def test_the_bus_resubscribes_on_the_new_master_and_resyncs(
    sentinels: SentinelSetup,
) -> None:
    got: list[Event] = []
    resyncs: list[int] = []
    metrics = Metrics()

    async def handler(event: Event) -> None:
        got.append(event)

    async def resync() -> None:
        resyncs.append(1)

    sub = RedisBus(sentinels.url, prefix="sb", replica_id="sub", options=OPTIONS, timing=FAST)
    pub = RedisBus(sentinels.url, prefix="sb", replica_id="pub", options=OPTIONS, timing=FAST)
    sub.count_with(metrics)
    await sub.start(handler, resync)
    await pub.start(handler, resync)
    await sub.follow([note_topic("n")])
    try:
        await pub.publish({"t": "lock", "note": "n", "reason": "before"})
        await _until("the first event", lambda: _has(got, "before"))
        await asyncio.to_thread(sentinels.failover)
        await _until("a resync after the failover", lambda: _true(len(resyncs) >= 1))

        async def after() -> bool:
            await pub.publish({"t": "lock", "note": "n", "reason": "after"})
            await asyncio.sleep(0.1)
            return await _has(got, "after")

        await _until("an event published on the new master", after)
        received = metrics.bus_received.labels("lock")._value.get()
        assert received >= 2
    finally:
        await pub.close()
        await sub.close()


async def _works(leases: RedisLeaseStore) -> bool:
    await leases.ping()
    await leases.raise_fence("n-probe", 1)  # a write: a demoted master refuses it
    return True


async def _has(got: list[Event], reason: str) -> bool:
    return any(e.get("reason") == reason for e in got)


async def _true(value: bool) -> bool:
    return value


async def test_the_registry_keeps_sessions_across_a_failover(sentinels: SentinelSetup) -> None:
    reg = RedisSessionRegistry(sentinels.url, "sr", OPTIONS)
    await reg.start()
    try:
        record = SessionRecord("s1", ALICE, "r1", "sock", "2026-01-01T00:00:00Z")
        await reg.claim(record, 60_000)
        await asyncio.to_thread(sentinels.failover)
        await _until("the registry on the new master", lambda: reg.touch("s1", "sock", 60_000))
        assert [r.session for r in await reg.sessions()] == ["s1"]
    finally:
        await reg.close()

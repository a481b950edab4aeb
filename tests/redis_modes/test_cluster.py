"""The Redis backends on a real Redis Cluster of their own (three masters with
a replica each, on loopback), through the faults a cluster has: a master
killed and replaced by its replica, and a slot moved to another master while
in use. A failover of any shard reads as data loss (rule 8); a slot move does
not; the bus re-subscribes on whichever master serves its channel now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from collab.bus.redis import RedisBus
from collab.events import Event, note_topic
from collab.leases.keys import LeaseKeys
from collab.leases.redis import RedisLeaseStore
from tests.bus.helpers import FAST
from tests.leases.helpers import ALICE, BOB
from tests.redis_modes.topology import (
    CLUSTER_OPTIONS,
    ClusterSetup,
    kill_master_of,
    migrate_slot_of,
)


@pytest.fixture
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.stop()


@pytest.fixture
async def leases(cluster: ClusterSetup) -> AsyncIterator[RedisLeaseStore]:
    store = RedisLeaseStore(
        cluster.url, prefix="cl", ttl_ms=60_000, lock_delay_ms=500, options=CLUSTER_OPTIONS
    )
    await store.start()
    yield store
    await store.close()


async def _until(what: str, check, limit_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
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


def _notes_on_every_shard() -> list[str]:
    """Note ids whose slots fall on different masters of a fresh cluster
    (``redis-cli --cluster create`` splits the slots in three ranges)."""
    from redis.crc import key_slot

    found: dict[int, str] = {}
    i = 0
    while len(found) < 3:
        note = f"note-{i}"
        found.setdefault(key_slot(note.encode()) * 3 // 16384, note)
        i += 1
    return [found[k] for k in sorted(found)]


async def test_every_master_keeps_an_epoch_key(leases: RedisLeaseStore) -> None:
    marks = leases._marks
    assert sum(1 for m in marks if m.startswith("server:")) == 3
    assert sum(1 for m in marks if m.startswith("epoch:")) == 3


async def test_a_shard_failover_voids_every_lease(
    cluster: ClusterSetup, leases: RedisLeaseStore
) -> None:
    notes = _notes_on_every_shard()
    for note in notes:
        assert (await leases.try_acquire(note, "sa", ALICE, wait=False)).kind == "granted"
    assert not await leases.check_epoch()
    await asyncio.to_thread(kill_master_of, cluster, LeaseKeys.of("cl", notes[1]).lease)
    # The other shards never noticed, yet a grant on the failed one may be
    # gone: the store reports a loss, once.
    await _until("the store works again", lambda: leases.renew(notes[1], "sa", 1))
    assert await leases.check_epoch()
    assert not await leases.check_epoch()
    assert await leases.renew(notes[0], "sa", 1)  # untouched shards keep working


async def test_a_slot_move_loses_nothing_and_is_not_a_loss(
    cluster: ClusterSetup, leases: RedisLeaseStore
) -> None:
    note = "moving-note"
    granted = await leases.try_acquire(note, "sa", ALICE, wait=False)
    assert (await leases.try_acquire(note, "sb", BOB, wait=True)).kind == "queued"
    await asyncio.to_thread(migrate_slot_of, cluster, LeaseKeys.of("cl", note).lease)
    assert await leases.renew(note, "sa", granted.fence)  # MOVED is followed
    assert await leases.renew_waiter(note, "sb") == 1
    assert not await leases.check_epoch()


async def test_the_bus_follows_its_channel_to_a_new_master(cluster: ClusterSetup) -> None:
    got: list[Event] = []
    resyncs: list[int] = []

    async def handler(event: Event) -> None:
        got.append(event)

    async def resync() -> None:
        resyncs.append(1)

    sub = RedisBus(cluster.url, prefix="cb", replica_id="s", timing=FAST, options=CLUSTER_OPTIONS)
    pub = RedisBus(cluster.url, prefix="cb", replica_id="p", timing=FAST, options=CLUSTER_OPTIONS)
    await sub.start(handler, resync)
    await pub.start(handler, resync)
    await sub.follow([note_topic("n")])
    channel = "cb:ev:{note:n}"  # sharded: on the master serving the note topic's slot

    async def heard(tag: str) -> bool:
        await pub.publish({"t": "lock", "note": "n", "reason": tag})
        await asyncio.sleep(0.1)
        return any(e.get("reason") == tag for e in got)

    try:
        await _until("an event", lambda: heard("first"))
        await asyncio.to_thread(migrate_slot_of, cluster, channel)
        await _until("a resync after the slot moved", lambda: _true(len(resyncs) >= 1))
        await _until("an event after the move", lambda: heard("moved"))
        await asyncio.to_thread(kill_master_of, cluster, channel)
        await _until("a resync after the failover", lambda: _true(len(resyncs) >= 2))
        await _until("an event after the failover", lambda: heard("failed-over"))
    finally:
        await pub.close()
        await sub.close()


async def _true(value: bool) -> bool:
    return value

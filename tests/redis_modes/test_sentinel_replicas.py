"""Three ``collab serve`` replicas on Redis behind Sentinel (a master, a replica
and three sentinels): a failover by ``SENTINEL FAILOVER`` and then one by
killing the master are each treated as rule 8 says. The holder is told its
lease was lost (``reset``), grants pause, the token is granted again under a
higher fence, the old fence is refused, and the history checker finds no
acknowledged edit lost and no two writers under one fence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.harness import LOCK_DELAY_S, TTL_S, acquire, write
from tests.redis_modes.topology import SentinelSetup
from tests.redis_modes.worlds import (
    SENTINEL_ENV,
    TopologyWorld,
    fenced,
    fresh_database,
    keep_writing,
    regrant,
)


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    setup = SentinelSetup().start()
    yield setup
    setup.stop()


@pytest.fixture
async def world(sentinels: SentinelSetup) -> AsyncIterator[TopologyWorld]:
    w = TopologyWorld(await fresh_database("sentinel"), sentinels.url, SENTINEL_ENV)
    yield w
    await w.close()


@pytest.mark.parametrize("kill", [False, True], ids=["sentinel-failover", "master-killed"])
async def test_a_master_failover_voids_tokens_and_regrants_under_higher_fences(
    world: TopologyWorld, sentinels: SentinelSetup, kill: bool
) -> None:
    await world.start()
    note, (u1, u2) = await world.writers(2)
    holder = await world.client("holder", u1, 0, note)
    viewer = await world.client("viewer", u2, 1, note)
    fence = await acquire(holder, note)
    for i in range(3):
        assert (await write(holder, note, fence, f"[before-{i}]"))["type"] == "ack"

    stop = asyncio.Event()
    writer = asyncio.create_task(keep_writing(holder, note, fence, "during", stop))
    world.history.fault("sentinel_failover", stall_s=10 + 2 * (TTL_S + LOCK_DELAY_S), kill=kill)
    await asyncio.to_thread(sentinels.failover, kill=kill)
    lost = await holder.wait_for(
        lambda f: f.get("type") == "lease_lost" and f.get("note") == note, 15
    )
    stop.set()
    await writer
    # A killed master stops renewals for longer than the TTL while the
    # sentinels agree it is down, so the lease may have expired first.
    assert lost["reason"] in (("reset", "expired") if kill else ("reset",))
    assert lost["fence"] == fence

    new_fence = await regrant(holder, note)
    assert new_fence > fence
    assert await fenced(holder, note, fence)
    assert (await write(holder, note, new_fence, "[after]"))["type"] == "ack"
    await viewer.wait_for(
        lambda f: f.get("type") == "edited" and "[after]" in str(f.get("changes")), 5
    )
    await world.check([note])
    if kill:
        await asyncio.to_thread(sentinels.restart_lost_node)

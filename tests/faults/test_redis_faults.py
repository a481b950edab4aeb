"""Redis faults: data loss on restart, a lease key expired early, a replica's
pub/sub subscription silently cut (scenarios 4-6 of the fault model, docs/reliability.md)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from tests.faults.harness import (
    LOCK_DELAY_S,
    TTL_S,
    World,
    acquire,
    known_version,
    redis_key,
    write,
)
from tests.support.client import new_op
from tests.support.history import RecordingClient


async def _fenced(client: RecordingClient, note: str, fence: int) -> bool:
    reply = await client.request(
        "edit",
        note=note,
        fence=fence,
        base=known_version(client, note),
        op=new_op(),
        changes=[{"at": 0, "del": 0, "ins": "[stale]"}],
    )
    return reply.get("code") == "fenced"


async def test_redis_restart_without_persistence(world: World) -> None:
    """Redis loses everything: holders are told ``reset``, grants pause for
    TTL + lock-delay, the fence counter is repaired from PostgreSQL (the new
    fence is above the old one), the old fence is refused, viewers resync and
    the token can be taken again."""
    await world.start()
    note, (u1, u2) = await world.writers(2)
    holder = await world.client("holder", u1, 0, note)
    viewer = await world.client("viewer", u2, 1, note)
    fence = await acquire(holder, note)
    for i in range(3):
        assert (await write(holder, note, fence, f"[before-{i}]"))["type"] == "ack"
    down_s = 0.5
    world.history.fault("redis_restart", stall_s=down_s + 2 * (TTL_S + LOCK_DELAY_S))
    world.redis.kill()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(world.redis.start)
    lost = await holder.wait_for(lambda f: f.get("type") == "lease_lost", 5)
    assert lost["reason"] == "reset" and lost["fence"] == fence
    deadline = time.monotonic() + 3 * (TTL_S + LOCK_DELAY_S) + 2
    new_fence = 0
    while not new_fence and time.monotonic() < deadline:
        reply = await holder.request("acquire", note=note, wait=False)
        if reply["type"] == "granted":
            new_fence = int(reply["fence"])
        else:
            assert reply["code"] in ("unavailable", "locked"), reply
            await asyncio.sleep(0.2)
    assert new_fence > fence, "counter repaired from PostgreSQL"
    r = aioredis.Redis(port=world.redis.port, decode_responses=True)
    try:
        assert int(await r.get(redis_key(world.prefix, note, "fence")) or 0) >= new_fence
    finally:
        await r.aclose()
    assert await _fenced(holder, note, fence)
    assert (await write(holder, note, new_fence, "[after]"))["type"] == "ack"
    edited = await viewer.wait_for(
        lambda f: f.get("type") == "edited" and "[after]" in str(f.get("changes")), 2 * TTL_S
    )
    assert edited["version"] == 4
    await world.check([note])


async def test_lease_key_expired_early(world: World) -> None:
    """``PEXPIRE lease 1`` (a Redis clock jump): the next holder still waits
    out the old lease + lock-delay, and the old fence is refused."""
    await world.start()
    note, (u1, u2) = await world.writers(2)
    holder = await world.client("holder", u1, 0, note)
    waiter = await world.client("waiter", u2, 1, note)
    fence = await acquire(holder, note)
    assert (await write(holder, note, fence, "[h-1]"))["type"] == "ack"
    queued = await waiter.request("acquire", note=note)
    assert queued["type"] == "queued"
    r = aioredis.Redis(port=world.redis.port, decode_responses=True)
    try:
        assert await r.pexpire(redis_key(world.prefix, note, "lease"), 1)
    finally:
        await r.aclose()
    world.history.mark("*", "lease_key_expired")
    granted = await waiter.wait_for(
        lambda f: f.get("type") == "granted" and f.get("rid") == queued["rid"], 2 * TTL_S + 2
    )
    assert granted["fence"] > fence
    assert await _fenced(holder, note, fence)
    assert (await write(waiter, note, granted["fence"], "[w-1]"))["type"] == "ack"
    await world.check([note])


async def test_cut_subscription_converges_and_revoke_still_fences(world: World) -> None:
    """Replica 0's pub/sub link goes silent (blackholed, no error) while the
    token changes hands and is revoked. Its viewer still sees each new lock
    state and every edit within 2 x TTL (reconcile timer), and an admin revoke
    on replica 1 fences a holder served by replica 0."""
    await world.start()
    note, (u1, u2, u3) = await world.writers(3)
    viewer = await world.client("viewer", u3, 0, note)
    cut_holder = await world.client("cut-holder", u1, 0, note)
    other = await world.client("other", u2, 1, note)
    admin = await world.client("admin", await world.admin_api(), 1, note)
    world.redis_proxies[0].blackhole(match=b"collab-bus-r0-sub")
    world.history.fault("bus_cut_r0")
    converge = 2 * TTL_S

    async def viewer_sees(fence: int | None) -> None:
        def matches(f: dict[str, object]) -> bool:
            lock = f.get("lock")
            if f.get("type") != "lock":
                return False
            return (
                lock is None
                if fence is None
                else (isinstance(lock, dict) and lock.get("fence") == fence)
            )

        await viewer.wait_for(matches, converge)

    f1 = await acquire(other, note)
    await viewer_sees(f1)
    assert (await write(other, note, f1, "[other-1]"))["type"] == "ack"
    await viewer.wait_for(lambda f: f.get("type") == "edited" and f["version"] == 1, converge)
    await other.request("release", note=note, fence=f1)
    f2 = await acquire(cut_holder, note)
    await viewer_sees(f2)
    assert (await write(cut_holder, note, f2, "[cut-1]"))["type"] == "ack"
    revoked = await admin.request("revoke", note=note)
    assert revoked["type"] == "revoked" and revoked["fence"] > f2
    assert await _fenced(cut_holder, note, f2), "revoke fences a holder on a cut-off replica"
    await viewer_sees(None)
    world.redis_proxies[0].heal()
    f3 = await acquire(other, note)
    await viewer_sees(f3)
    assert (await write(other, note, f3, "[other-2]"))["type"] == "ack"
    await viewer.wait_for(lambda f: f.get("type") == "edited" and f["version"] == 3, converge)
    await world.check([note])

"""Delayed and dropped frames between a client and its replica, through the
fault proxy (scenario 8 of the fault model, docs/reliability.md)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.faults.harness import HANDOFF_S, World, acquire, known_version, write
from tests.support.client import new_op


async def test_delayed_heartbeats_then_delayed_write_is_refused(world: World) -> None:
    """The holder's upstream link holds everything (heartbeats and a write)
    past TTL; another client gets the token; then the held frames arrive:
    the write is refused as ``fenced``."""
    await world.start()
    note, (u1, u2) = await world.writers(2)
    holder = await world.client("holder", u1, 0, note, via_proxy=True)
    waiter = await world.client("waiter", u2, 1, note)
    fence = await acquire(holder, note)
    assert (await write(holder, note, fence, "[h-1]"))["type"] == "ack"
    queued = await waiter.request("acquire", note=note)
    proxy = world.client_proxies["holder"]
    proxy.blackhole(direction="up")
    await holder.send(
        {
            "type": "edit",
            "rid": "delayed",
            "note": note,
            "fence": fence,
            "base": known_version(holder, note),
            "op": new_op(),
            "changes": [{"at": 0, "del": 0, "ins": "[delayed]"}],
        }
    )
    granted = await waiter.wait_for(
        lambda f: f.get("type") == "granted" and f.get("rid") == queued["rid"], HANDOFF_S + 2
    )
    assert (await write(waiter, note, granted["fence"], "[w-1]"))["type"] == "ack"
    proxy.heal()
    late = await holder.wait_for(lambda f: f.get("rid") == "delayed", 5)
    assert late["type"] == "error" and late["code"] == "fenced", late
    await world.check([note])


async def test_dropped_ack_then_retry_is_not_applied_twice(world: World) -> None:
    """The edit commits but its ack is lost with the connection; the client
    resumes its session and retries the same op: acknowledged again with the
    original version, applied once."""
    await world.start()
    note, (u1,) = await world.writers(1)
    first = await world.client("first", u1, 0, note, via_proxy=True)
    fence = await acquire(first, note)
    assert (await write(first, note, fence, "[one]"))["type"] == "ack"
    proxy = world.client_proxies["first"]
    proxy.drop(direction="down")
    op = new_op()
    await first.send(
        {
            "type": "edit",
            "rid": "lost",
            "note": note,
            "fence": fence,
            "base": 1,
            "op": op,
            "changes": [{"at": 0, "del": 0, "ins": "[two]"}],
        }
    )
    conn = await asyncpg.connect(world.database_url)
    try:
        deadline = time.monotonic() + 5
        while await conn.fetchval("SELECT count(*) FROM edits WHERE op = $1", op) == 0:
            assert time.monotonic() < deadline, "the edit never committed"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    proxy.cut()
    world.history.mark("first", "dead")
    await first.wait_closed(5)
    assert not [f for f in first.frames if f.get("rid") == "lost"], "the ack was dropped"
    proxy.heal()
    again = await world.client("again", u1, 1, note, resume=first.session)
    assert [lease["fence"] for lease in again.welcome["leases"]] == [fence]
    retry = await again.request(
        "edit", note=note, fence=fence, base=1, op=op, changes=[{"at": 0, "del": 0, "ins": "[two]"}]
    )
    assert retry["type"] == "ack" and retry["version"] == 2, retry
    assert (await write(again, note, fence, "[three]"))["type"] == "ack"
    await world.check([note])

"""A seeded randomized soak (docs/reliability.md): writers that queue, write,
release, crash while holding or while queued; admin revokes; replica
restarts. The history checker must pass. Run with ``pytest -m soak``.

``COLLAB_SOAK_SEED`` replays a run (the seed is printed); ``COLLAB_SOAK_S``
sets its length (default 75 s, capped at 110 s so the run stays <= 120 s)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import pytest
import websockets

from tests.faults.harness import HANDOFF_S, World, write
from tests.support.client import Api
from tests.support.history import RecordingClient

pytestmark = pytest.mark.soak

WRITERS = 4
MAX_SOAK_S = 110.0


async def _writer(
    world: World, api: Api, note: str, name: str, rng: random.Random, until: float
) -> None:
    """One user's life: connect, queue, write, then leave cleanly or crash."""
    life = 0
    while time.monotonic() < until:
        life += 1
        replica = rng.randrange(len(world.replicas))
        try:
            client = await world.client(f"{name}.{life}", api, replica, note)
        except (OSError, AssertionError, TimeoutError, websockets.WebSocketException):
            await asyncio.sleep(0.3)
            continue
        try:
            await _one_life(client, note, name, life, rng)
        except (TimeoutError, websockets.WebSocketException, OSError, KeyError):
            pass  # the replica restarted or the reply was lost: start again
        finally:
            client.stop_heartbeats()
        if client.closed is None:
            if rng.random() < 0.3:
                client.abandon()  # crash: no goodbye, the lease must expire
            else:
                with contextlib.suppress(Exception):
                    await client.close()
        await asyncio.sleep(rng.uniform(0, 0.5))


async def _one_life(
    client: RecordingClient, note: str, name: str, life: int, rng: random.Random
) -> None:
    first = await client.request("acquire", note=note)
    if first["type"] == "queued":
        if rng.random() < 0.15:
            await asyncio.sleep(rng.uniform(0, 1.0))
            client.abandon()  # a waiter that dies in the queue
            return
        rid = first["rid"]
        first = await client.wait_for(
            lambda f: f.get("rid") == rid and f.get("type") == "granted", 3 * HANDOFF_S + 5
        )
    if first.get("type") != "granted":
        return
    fence = int(first["fence"])
    for i in range(rng.randint(1, 6)):
        if client.pushes("lease_lost", note):
            return  # a well-behaved client stops writing
        reply = await write(client, note, fence, f"[{name}.{life}.{i}]", reply_s=3)
        if reply["type"] != "ack":
            return
        await asyncio.sleep(rng.uniform(0, 0.2))
    if rng.random() < 0.7:
        await client.request("release", note=note, fence=fence)


async def _chaos(world: World, note: str, rng: random.Random, until: float) -> None:
    admin = await world.admin_api()
    while time.monotonic() < until - 5:
        await asyncio.sleep(rng.uniform(2.0, 5.0))
        roll = rng.random()
        if roll < 0.5:
            world.history.mark("*", "chaos", what="revoke")
            with contextlib.suppress(Exception):
                await admin.call("POST", f"/api/admin/notes/{note}/revoke")
        elif roll < 0.8:
            i = rng.randrange(len(world.replicas))
            world.history.fault("replica_restart", stall_s=HANDOFF_S + 8, replica=i)
            await world.restart_replica(i)
        else:
            world.history.mark("*", "chaos", what="quiet")


async def test_randomized_soak(world: World) -> None:
    seed = int(os.environ.get("COLLAB_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    length = min(float(os.environ.get("COLLAB_SOAK_S", "75")), MAX_SOAK_S)
    print(f"\nsoak seed {seed} ({length:.0f}s): replay with COLLAB_SOAK_SEED={seed}")
    rng = random.Random(seed)
    await world.start()
    note, users = await world.writers(WRITERS)
    until = time.monotonic() + length
    tasks = [
        asyncio.create_task(_writer(world, api, note, f"u{i}", random.Random(rng.random()), until))
        for i, api in enumerate(users)
    ]
    tasks.append(asyncio.create_task(_chaos(world, note, random.Random(rng.random()), until)))
    await asyncio.gather(*tasks)
    acked = sum(1 for c in world.clients for f in c.frames if f.get("type") == "ack")
    assert acked > 10, f"too little happened to judge (seed {seed})"
    try:
        await world.check([note])
    except AssertionError as exc:
        raise AssertionError(f"soak seed {seed}: {exc}") from None

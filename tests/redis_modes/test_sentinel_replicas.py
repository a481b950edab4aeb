"""Two ``collab serve`` replicas on Redis behind Sentinel (a master, a replica
and three sentinels): a failover by ``SENTINEL FAILOVER`` and then one by
killing the master are each treated as rule 8 says. The holder is told its
lease was lost (``reset``), grants pause, the token is granted again under a
higher fence, the old fence is refused, and the history checker finds no
acknowledged edit lost and no two writers under one fence."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD
from tests.faults.harness import LOCK_DELAY_S, TTL_S, World, acquire, known_version, write
from tests.redis_modes.topology import SENTINEL_MASTER, SentinelSetup
from tests.support.client import new_op
from tests.support.history import RecordingClient
from tests.support.server import ServerProcess, distributed_env
from tests.support.services import base_database_url, with_database


class _NoRedis:
    """The world's Redis is the Sentinel setup, stopped by its fixture."""

    port = 0

    def stop(self) -> None:
        pass


class SentinelWorld(World):
    def __init__(self, database_url: str, setup: SentinelSetup) -> None:
        super().__init__(database_url, redis=_NoRedis())  # type: ignore[arg-type]
        self.setup = setup

    async def start(  # type: ignore[override]
        self, replicas: int = 2, **extra: str
    ) -> SentinelWorld:
        env = distributed_env(
            self.database_url, self.setup.url, self.prefix,
            COLLAB_REDIS_MODE="sentinel", COLLAB_REDIS_SENTINEL_MASTER=SENTINEL_MASTER,
            COLLAB_REDIS_SOCKET_TIMEOUT_S="1",
            COLLAB_BOOTSTRAP_ADMIN_USERNAME=ADMIN_NAME,
            COLLAB_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            COLLAB_LOG_LEVEL="warning", **extra,
        )  # fmt: skip
        self.replicas.append(await asyncio.to_thread(ServerProcess(env, name="r0").start))
        for i in range(1, replicas):
            self.replicas.append(await asyncio.to_thread(ServerProcess(env, name=f"r{i}").start))
        return self


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    setup = SentinelSetup().start()
    yield setup
    setup.stop()


@pytest.fixture
async def world(sentinels: SentinelSetup) -> AsyncIterator[SentinelWorld]:
    name = "sentinel_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(base_database_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    w = SentinelWorld(with_database(base_database_url(), name), sentinels)
    yield w
    await w.close()


async def _fenced(client: RecordingClient, note: str, fence: int) -> bool:
    reply = await client.request(
        "edit", note=note, fence=fence, base=known_version(client, note), op=new_op(),
        changes=[{"at": 0, "del": 0, "ins": "[stale]"}],
    )  # fmt: skip
    return reply.get("code") == "fenced"


async def _regrant(holder: RecordingClient, note: str) -> int:
    """Acquire until granted (grants pause for TTL + lock-delay after a loss)."""
    deadline = time.monotonic() + 4 * (TTL_S + LOCK_DELAY_S) + 10
    while time.monotonic() < deadline:
        reply = await holder.request("acquire", note=note, wait=False)
        if reply["type"] == "granted":
            return int(reply["fence"])
        assert reply.get("code") in ("unavailable", "locked"), reply
        await asyncio.sleep(0.2)
    raise AssertionError("the token was not granted again after the failover")


async def _keep_writing(
    client: RecordingClient, note: str, fence: int, tag: str, stop: asyncio.Event
) -> None:
    """Edits under ``fence`` until told to stop or refused: the checker then
    holds every acknowledged one to be in the final text."""
    i = 0
    while not stop.is_set():
        try:
            reply = await write(client, note, fence, f"[{tag}-{i}]", reply_s=3)
        except (AssertionError, TimeoutError):
            return
        if reply["type"] != "ack":
            return
        i += 1
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kill", [False, True], ids=["sentinel-failover", "master-killed"])
async def test_a_master_failover_voids_tokens_and_regrants_under_higher_fences(
    world: SentinelWorld, kill: bool
) -> None:
    await world.start()
    note, (u1, u2) = await world.writers(2)
    holder = await world.client("holder", u1, 0, note)
    viewer = await world.client("viewer", u2, 1, note)
    fence = await acquire(holder, note)
    for i in range(3):
        assert (await write(holder, note, fence, f"[before-{i}]"))["type"] == "ack"

    stop = asyncio.Event()
    writer = asyncio.create_task(_keep_writing(holder, note, fence, "during", stop))
    world.history.fault("sentinel_failover", stall_s=10 + 2 * (TTL_S + LOCK_DELAY_S), kill=kill)
    await asyncio.to_thread(world.setup.failover, kill=kill)
    lost = await holder.wait_for(
        lambda f: f.get("type") == "lease_lost" and f.get("note") == note, 15
    )
    stop.set()
    await writer
    assert lost["reason"] == "reset" and lost["fence"] == fence

    new_fence = await _regrant(holder, note)
    assert new_fence > fence
    assert await _fenced(holder, note, fence)
    assert (await write(holder, note, new_fence, "[after]"))["type"] == "ack"
    await viewer.wait_for(
        lambda f: f.get("type") == "edited" and "[after]" in str(f.get("changes")), 5
    )
    await world.check([note])
    if kill:
        await asyncio.to_thread(world.setup.restart_lost_node)
